package main

import (
	"fmt"

	"github.com/coredns/coredns/coremain"
	kineversion "github.com/k3s-io/kine/pkg/version"
	"k8s.io/component-base/version"
)

// versionString names the Kubernetes version set by the build's ldflags and
// kine's and CoreDNS's module versions.
func versionString() string {
	return fmt.Sprintf("flyk-controlplane kubernetes %s kine %s coredns v%s",
		version.Get().GitVersion, kineversion.Version, coremain.CoreVersion)
}
