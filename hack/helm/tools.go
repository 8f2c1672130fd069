//go:build tools

// Package tools pins helm's packages so that `go mod tidy` keeps every module the helm
// command needs.
package tools

import (
	_ "helm.sh/helm/v3/pkg/action"
	_ "helm.sh/helm/v3/pkg/cli"
)
