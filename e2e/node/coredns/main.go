// CoreDNS for the local node, with only the plugins its Corefile uses: cluster
// names from the kubernetes plugin, answered from a cache, and the health and
// ready endpoints the kubelet probes. There is no forward plugin: nothing is
// resolved off this machine.
package main

import (
	_ "github.com/coredns/coredns/core/dnsserver"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/loadbalance"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"
	"github.com/coredns/coredns/coremain"
)

func main() {
	coremain.Run()
}
