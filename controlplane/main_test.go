package main

import (
	"reflect"
	"testing"
)

func TestComponentFromArgument(t *testing.T) {
	name, args := component([]string{"/usr/local/bin/flyk-controlplane", "kube-apiserver", "--secure-port=6443"})
	if name != "kube-apiserver" || !reflect.DeepEqual(args, []string{"--secure-port=6443"}) {
		t.Fatalf("got %q %v", name, args)
	}
}

func TestComponentFromSymlinkName(t *testing.T) {
	name, args := component([]string{"/usr/local/bin/kine", "--endpoint=sqlite://x"})
	if name != "kine" || !reflect.DeepEqual(args, []string{"--endpoint=sqlite://x"}) {
		t.Fatalf("got %q %v", name, args)
	}
}

func TestNoComponentIsUsage(t *testing.T) {
	if name, _ := component([]string{"flyk-controlplane"}); name != "" {
		t.Fatalf("got %q", name)
	}
	if code := run("", nil); code != 2 {
		t.Fatalf("exit %d, want 2", code)
	}
	if code := run("etcd", nil); code != 2 {
		t.Fatalf("exit %d, want 2", code)
	}
}
