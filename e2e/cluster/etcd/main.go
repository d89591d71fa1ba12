// Command etcd runs a single-member etcd server on loopback for the local
// Kubernetes test cluster: clients on 127.0.0.1:2379, peers on 127.0.0.1:2380.
package main

import (
	"flag"
	"log"
	"net/url"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
)

func main() {
	dataDir := flag.String("data-dir", "", "directory holding the etcd data (required)")
	flag.Parse()
	if *dataDir == "" {
		log.Fatal("--data-dir is required")
	}
	client := url.URL{Scheme: "http", Host: "127.0.0.1:2379"}
	peer := url.URL{Scheme: "http", Host: "127.0.0.1:2380"}

	cfg := embed.NewConfig()
	cfg.Name = "courier-etcd"
	cfg.Dir = *dataDir
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{client}, []url.URL{client}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{peer}, []url.URL{peer}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.LogLevel = "warn"

	server, err := embed.StartEtcd(cfg)
	if err != nil {
		log.Fatalf("starting etcd: %v", err)
	}
	select {
	case <-server.Server.ReadyNotify():
		log.Printf("etcd ready, serving clients on %s", client.String())
	case <-time.After(60 * time.Second):
		server.Close()
		log.Fatal("etcd did not become ready within 60s")
	}

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	select {
	case sig := <-stop:
		log.Printf("received %s, stopping etcd", sig)
	case err := <-server.Err():
		log.Printf("etcd failed: %v", err)
	}
	server.Close()
}
