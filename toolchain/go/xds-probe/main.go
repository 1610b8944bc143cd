// Command xds-probe reads what Envoy Gateway publishes for one Gateway, the way that Gateway's Envoy proxy does: one
// ADS stream to the xDS server over TLS 1.3, the node's cluster naming the Gateway ("<namespace>/<name>", Envoy
// Gateway's key for its configuration), and a wildcard state-of-the-world request per resource type. With
// Envoy Gateway's proxies in their Gateway's namespace the server authenticates a proxy by a service-account token
// bound to its pod, whose name must be the node id (internal/xds/server/kubejwt), so -token-file and -node-id
// carry them. It prints {"clusters": [...], "listeners": [...], "routes": [...]}, each resource in protojson.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/encoding/protojson"
)

// The resource types read, in the order an Envoy asks for them, by the key they are printed under.
var resourceTypes = []struct{ key, typeURL string }{
	{"clusters", "type.googleapis.com/envoy.config.cluster.v3.Cluster"},
	{"listeners", "type.googleapis.com/envoy.config.listener.v3.Listener"},
	{"routes", "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"},
}

func main() {
	addr := flag.String("addr", "127.0.0.1:18000", "host:port of the xDS server")
	serverName := flag.String("server-name", "", "name the server's certificate is checked against")
	caFile := flag.String("ca", "", "CA certificate (PEM) that signed the server's certificate")
	tokenFile := flag.String("token-file", "", "service-account token sent as the authorization bearer, if any")
	nodeID := flag.String("node-id", "xds-probe", "node id (the proxy pod's name where tokens are pod-bound)")
	nodeCluster := flag.String("node-cluster", "", "node cluster: <gateway namespace>/<gateway name>")
	timeout := flag.Duration("timeout", 30*time.Second, "how long to wait for all resources")
	flag.Parse()
	resources, err := read(*addr, *serverName, *caFile, *tokenFile, *nodeID, *nodeCluster, *timeout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "xds-probe:", err)
		os.Exit(1)
	}
	out, err := json.Marshal(resources)
	if err != nil {
		fmt.Fprintln(os.Stderr, "xds-probe:", err)
		os.Exit(1)
	}
	fmt.Println(string(out))
}

func read(addr, serverName, caFile, tokenFile, nodeID, nodeCluster string,
	timeout time.Duration) (map[string][]json.RawMessage, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", caFile)
	}
	creds := credentials.NewTLS(&tls.Config{RootCAs: roots, ServerName: serverName, MinVersion: tls.VersionTLS13})
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if tokenFile != "" {
		token, err := os.ReadFile(tokenFile)
		if err != nil {
			return nil, err
		}
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+strings.TrimSpace(string(token)))
	}
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		return nil, err
	}
	node := &corev3.Node{Id: nodeID, Cluster: nodeCluster}
	keys := map[string]string{}
	for _, kind := range resourceTypes {
		keys[kind.typeURL] = kind.key
		request := &discoveryv3.DiscoveryRequest{Node: node, TypeUrl: kind.typeURL, ResourceNames: []string{"*"}}
		if err := stream.Send(request); err != nil {
			return nil, fmt.Errorf("asking for %s: %w", kind.key, err)
		}
	}
	// The first response of each type is kept; a later push of a type already read is skipped.
	printed := map[string][]json.RawMessage{}
	for len(printed) < len(resourceTypes) {
		response, err := stream.Recv()
		if err != nil {
			return nil, fmt.Errorf("waiting for resources (have %d of %d types): %w", len(printed),
				len(resourceTypes), err)
		}
		key, known := keys[response.GetTypeUrl()]
		if !known {
			return nil, fmt.Errorf("unexpected resource type %s", response.GetTypeUrl())
		}
		if _, done := printed[key]; done {
			continue
		}
		printed[key] = []json.RawMessage{}
		for _, resource := range response.GetResources() {
			message, err := resource.UnmarshalNew()
			if err != nil {
				return nil, fmt.Errorf("%s: %w", resource.GetTypeUrl(), err)
			}
			text, err := protojson.Marshal(message)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", resource.GetTypeUrl(), err)
			}
			printed[key] = append(printed[key], text)
		}
	}
	return printed, nil
}
