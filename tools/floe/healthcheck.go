package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/spf13/cobra"
)

// healthcheckCmd is the container health check of images that have no shell or curl
// (localstack/Dockerfile.floe and Dockerfile.minio are FROM scratch): one HTTP GET,
// exit status 0 on a 2xx reply, 1 otherwise.
func healthcheckCmd() *cobra.Command {
	var url string
	var timeout time.Duration
	var sec clientSec
	c := &cobra.Command{
		Use:   "healthcheck",
		Short: "GET a health URL (default: this node's /healthz); exit 0 on a 2xx reply (container health checks)",
		Args:  cobra.NoArgs,
		RunE: func(_ *cobra.Command, _ []string) error {
			hc, scheme, err := sec.httpClient()
			if err != nil {
				return err
			}
			if url == "" {
				port := os.Getenv("FLOE_HTTP_PORT")
				if port == "" {
					port = "9080"
				}
				url = scheme + "://127.0.0.1:" + port + "/healthz"
			}
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
			if err != nil {
				return err
			}
			resp, err := hc.Do(req)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			if resp.StatusCode/100 != 2 {
				return fmt.Errorf("%s: %s", url, resp.Status)
			}
			return nil
		},
	}
	c.Flags().StringVar(&url, "url", "", "URL to GET (default http://127.0.0.1:$FLOE_HTTP_PORT/healthz, port 9080 if unset; https with --tls-*)")
	sec.flags(c.Flags())
	c.Flags().DurationVar(&timeout, "timeout", 3*time.Second, "give up after this long")
	return c
}
