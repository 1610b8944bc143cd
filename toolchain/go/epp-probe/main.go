// Command epp-probe asks an endpoint picker where requests go, the way a gateway does: over Envoy's ext_proc
// protocol, request headers then the whole body. It reads one JSON request body per line on stdin and writes the
// endpoint the picker chose for it (its x-gateway-destination-endpoint header) per line on stdout.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extproc "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

const destinationHeader = "x-gateway-destination-endpoint"

func main() {
	addr := flag.String("addr", "", "host:port of the picker's ext_proc gRPC server")
	path := flag.String("path", "/v1/completions", "path of the requests")
	flag.Parse()
	conn, err := grpc.NewClient(*addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		fail(err)
	}
	defer conn.Close()
	client := extproc.NewExternalProcessorClient(conn)
	lines := bufio.NewScanner(os.Stdin)
	lines.Buffer(make([]byte, 1<<20), 1<<24)
	for n := 0; lines.Scan(); n++ {
		endpoint, err := pick(client, *path, lines.Bytes(), n)
		if err != nil {
			fail(err)
		}
		fmt.Println(endpoint)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "epp-probe:", err)
	os.Exit(1)
}

// pick sends one request's headers and body on a new stream and returns the endpoint the picker sets.
func pick(client extproc.ExternalProcessorClient, path string, body []byte, n int) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := client.Process(ctx)
	if err != nil {
		return "", err
	}
	headers := &corev3.HeaderMap{Headers: []*corev3.HeaderValue{
		{Key: ":method", RawValue: []byte("POST")},
		{Key: ":path", RawValue: []byte(path)},
		{Key: "content-type", RawValue: []byte("application/json")},
		{Key: "x-request-id", RawValue: []byte(fmt.Sprintf("epp-probe-%d", n))},
	}}
	requests := []*extproc.ProcessingRequest{
		{Request: &extproc.ProcessingRequest_RequestHeaders{RequestHeaders: &extproc.HttpHeaders{Headers: headers}}},
		{Request: &extproc.ProcessingRequest_RequestBody{RequestBody: &extproc.HttpBody{Body: body, EndOfStream: true}}},
	}
	for _, request := range requests {
		if err := stream.Send(request); err != nil {
			return "", err
		}
	}
	for {
		response, err := stream.Recv()
		if err != nil {
			return "", err
		}
		if refused := response.GetImmediateResponse(); refused != nil {
			return "", fmt.Errorf("request %d refused: %v", n, refused)
		}
		if answer := response.GetRequestHeaders(); answer != nil {
			for _, option := range answer.GetResponse().GetHeaderMutation().GetSetHeaders() {
				if option.GetHeader().GetKey() == destinationHeader {
					return string(option.GetHeader().GetRawValue()), stream.CloseSend()
				}
			}
			return "", fmt.Errorf("request %d: no %s in %v", n, destinationHeader, answer)
		}
	}
}
