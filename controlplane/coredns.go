package main

import (
	"os"

	"github.com/coredns/coredns/coremain"

	// The plugins flyk's cluster DNS uses, imported one by one (not through
	// core/plugin, which links every plugin CoreDNS ships): a Corefile naming
	// any other plugin fails to load. bind is the glue that puts the server
	// on one address (the machine's 6PN address, or loopback locally).
	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/forward"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/ready"
)

// coreDNSPlugins are the plugins imported above, as a Corefile names them.
var coreDNSPlugins = []string{"bind", "cache", "errors", "forward", "health", "kubernetes", "ready"}

// coreDNSPluginsImported are registered too, by packages of the plugins above
// (forward imports debug and dnstap, cache the metrics plugin "prometheus",
// kubernetes transfer and metadata): linked in, named by no Corefile of flyk's.
var coreDNSPluginsImported = []string{"debug", "dnstap", "metadata", "prometheus", "transfer"}

// runCoreDNS runs CoreDNS's own main with the given arguments (-conf FILE,
// -plugins, -version …). coremain reads the process's flags from os.Args
// with the standard flag package, so the arguments are put there.
func runCoreDNS(args []string) int {
	os.Args = append([]string{"coredns"}, args...)
	coremain.Run()
	return 0
}
