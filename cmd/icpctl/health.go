package main

import (
	"fmt"
	"io"
	"net/http"
	"time"
)

// HealthCmd checks a readiness or liveness URL: the container health check of
// the distroless image, which has no shell or curl.
type HealthCmd struct {
	URL     string        `name:"url" default:"http://127.0.0.1:9090/readyz" help:"URL that answers 200 when healthy."`
	Timeout time.Duration `name:"timeout" default:"3s" help:"How long to wait for the answer."`
}

// Run exits 0 on a 200 answer and 1 otherwise, printing why.
func (c *HealthCmd) Run(g *Globals) error {
	client := &http.Client{Timeout: c.Timeout}
	resp, err := client.Get(c.URL)
	if err != nil {
		return fmt.Errorf("health: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("health: %s answered %d: %s", c.URL, resp.StatusCode, body)
	}
	fmt.Fprintf(g.Stdout, "%s\n", body)
	return nil
}
