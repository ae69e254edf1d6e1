package main

import (
	"fmt"

	kineversion "github.com/k3s-io/kine/pkg/version"
	"k8s.io/component-base/version"
)

// versionString names the Kubernetes version set by the build's ldflags and
// kine's module version.
func versionString() string {
	return fmt.Sprintf("flyk-controlplane kubernetes %s kine %s", version.Get().GitVersion, kineversion.Version)
}
