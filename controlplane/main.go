// Command flyk-controlplane is one multicall binary holding the Kubernetes
// control plane flyk runs: kine (etcd API on SQLite), kube-apiserver,
// kube-controller-manager and kube-scheduler, each from its upstream module.
// flyk's supervisor (flyk/k8s/supervisor.py) runs them one process each.
//
// The component is chosen by the first argument (or by the binary's name,
// for symlinks named after a component). One process per component keeps
// upstream's cobra commands untouched: kube-apiserver and kube-scheduler both
// install a process-wide signal handler, and a second install panics.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	kine "github.com/k3s-io/kine/pkg/app"
	"github.com/spf13/cobra"
	"k8s.io/component-base/cli"
	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
	controllermanager "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	scheduler "k8s.io/kubernetes/cmd/kube-scheduler/app"
)

const usage = `usage: flyk-controlplane COMPONENT [FLAGS...]

components:
  kine                      etcd v3 API on SQLite (github.com/k3s-io/kine)
  kube-apiserver            upstream kube-apiserver
  kube-controller-manager   upstream kube-controller-manager
  kube-scheduler            upstream kube-scheduler
  coredns                   CoreDNS with the kubernetes, forward, cache, errors,
                            health, ready and bind plugins
  version                   print the Kubernetes, kine and CoreDNS versions built in
`

func main() {
	name, args := component(os.Args)
	os.Exit(run(name, args))
}

// component picks the component from argv[0] (a symlink named after it) or
// from the first argument.
func component(argv []string) (string, []string) {
	if base := filepath.Base(argv[0]); isComponent(base) {
		return base, argv[1:]
	}
	if len(argv) < 2 {
		return "", nil
	}
	return argv[1], argv[2:]
}

func isComponent(name string) bool {
	switch name {
	case "kine", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "coredns":
		return true
	}
	return false
}

func run(name string, args []string) int {
	switch name {
	case "kube-apiserver":
		return runCobra(apiserver.NewAPIServerCommand(), args)
	case "kube-controller-manager":
		return runCobra(controllermanager.NewControllerManagerCommand(), args)
	case "kube-scheduler":
		return runCobra(scheduler.NewSchedulerCommand(), args)
	case "coredns":
		return runCoreDNS(args)
	case "kine":
		app := kine.New()
		if err := app.Run(append([]string{"kine"}, args...)); err != nil && !errors.Is(err, context.Canceled) {
			fmt.Fprintln(os.Stderr, "kine:", err)
			return 1
		}
		return 0
	case "version", "--version":
		fmt.Println(versionString())
		return 0
	case "", "help", "-h", "--help":
		fmt.Fprint(os.Stderr, usage)
		if name == "" {
			return 2
		}
		return 0
	}
	fmt.Fprintf(os.Stderr, "flyk-controlplane: unknown component %q\n%s", name, usage)
	return 2
}

// runCobra runs an upstream component's command with the given arguments.
func runCobra(cmd *cobra.Command, args []string) int {
	cmd.SetArgs(args)
	return cli.Run(cmd)
}
