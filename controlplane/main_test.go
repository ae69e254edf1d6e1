package main

import (
	"reflect"
	"slices"
	"testing"

	"github.com/coredns/caddy"
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

func TestCoreDNSIsAComponent(t *testing.T) {
	name, args := component([]string{"/usr/local/bin/flyk-controlplane", "coredns", "-conf", "Corefile"})
	if name != "coredns" || !reflect.DeepEqual(args, []string{"-conf", "Corefile"}) {
		t.Fatalf("got %q %v", name, args)
	}
	if name, _ := component([]string{"/usr/local/bin/coredns", "-plugins"}); name != "coredns" {
		t.Fatalf("got %q", name)
	}
}

func TestCoreDNSRegistersOnlyItsPlugins(t *testing.T) {
	registered := caddy.ListPlugins()["others"]
	var want []string
	for _, name := range slices.Concat(coreDNSPlugins, coreDNSPluginsImported) {
		want = append(want, "dns."+name)
	}
	slices.Sort(want)
	if !reflect.DeepEqual(registered, want) {
		t.Fatalf("registered %v, want %v", registered, want)
	}
}
