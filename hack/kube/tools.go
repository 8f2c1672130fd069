//go:build tools

// Package tools pins the Kubernetes command packages so that `go mod tidy`
// keeps every module the control plane binaries need.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver/app"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	_ "k8s.io/kubectl/pkg/cmd"
)
