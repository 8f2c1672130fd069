// Command argocd is the part of ArgoCD the local platform runs: the repo server, the
// application controller and the ApplicationSet controller, chosen by the name the
// binary is called by (as ArgoCD's own multi-call binary does). Leaving out the API
// server, the CLI, Dex and notifications makes the build a good deal smaller and faster.
package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"k8s.io/klog/v2"

	appcontroller "github.com/argoproj/argo-cd/v3/cmd/argocd-application-controller/commands"
	applicationset "github.com/argoproj/argo-cd/v3/cmd/argocd-applicationset-controller/commands"
	reposerver "github.com/argoproj/argo-cd/v3/cmd/argocd-repo-server/commands"
	"github.com/argoproj/argo-cd/v3/common"
	"github.com/argoproj/argo-cd/v3/util/log"
)

func init() {
	klog.SetLogger(log.NewLogrusLogger(log.NewWithCurrentConfig()))
}

func main() {
	// ArgoCD's own main turns off gRPC's DNS SRV lookups here; they are on only when the
	// grpclb balancer is linked in, which none of these three components imports (its
	// workaround panics when it finds them off already).
	name := filepath.Base(os.Args[0])
	if env := os.Getenv("ARGOCD_BINARY_NAME"); env != "" {
		name = env
	}
	var command *cobra.Command
	switch name {
	case common.CommandRepoServer:
		command = reposerver.NewCommand()
	case common.CommandApplicationController:
		command = appcontroller.NewCommand()
	case common.CommandApplicationSetController:
		command = applicationset.NewCommand()
	default:
		fmt.Fprintf(os.Stderr, "run this binary as %s, %s or %s (a symlink or ARGOCD_BINARY_NAME), not %q\n",
			common.CommandRepoServer, common.CommandApplicationController, common.CommandApplicationSetController, name)
		os.Exit(2)
	}
	// A failure at start-up (a busy port) is then the last line of the log, where the
	// local platform's error message shows it, rather than above a page of usage.
	command.SilenceUsage = true
	if err := command.Execute(); err != nil {
		os.Exit(1)
	}
}
