// Package loadgen drives creates against a running icpd over HTTP and
// measures what a client sees: throughput, latency percentiles, status codes,
// and whether each created ICP is readable by its creator at once.
package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Config of one load run. The run stops at Duration or after Requests creates,
// whichever comes first (a zero bound is no bound; at least one is required).
type Config struct {
	BaseURL     string        // e.g. http://127.0.0.1:8080
	Token       string        // bearer token of the creating user
	Concurrency int           // concurrent clients, each with its own keep-alive connection
	Duration    time.Duration // how long to run
	Requests    int           // how many creates in all
	// VerifyEvery makes every Nth create followed by a GET of the new ICP by
	// the same user, checked to answer 200 without a pending consistency
	// header on the create (0: never).
	VerifyEvery int
	Client      *http.Client
}

// Result of a run.
type Result struct {
	Creates      int
	Errors       int
	Pending      int // creates answered with ICP-Consistency: pending
	ReadFailures int // verification GETs that did not return the ICP
	Statuses     map[int]int
	Elapsed      time.Duration
	P50, P90     time.Duration
	P99, Max     time.Duration
	FirstError   string
}

// Rate is creates per second.
func (r Result) Rate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Creates) / r.Elapsed.Seconds()
}

// String is a one-paragraph report.
func (r Result) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "creates: %d in %s = %.0f/s\n", r.Creates, r.Elapsed.Round(time.Millisecond), r.Rate())
	fmt.Fprintf(&b, "latency: p50 %s  p90 %s  p99 %s  max %s\n", r.P50, r.P90, r.P99, r.Max)
	fmt.Fprintf(&b, "errors: %d  pending: %d  read-after-create failures: %d  statuses: %v\n", r.Errors, r.Pending, r.ReadFailures, r.Statuses)
	if r.FirstError != "" {
		fmt.Fprintf(&b, "first error: %s\n", r.FirstError)
	}
	return b.String()
}

// Body is the create request each client sends (a realistic ICP of ~700 bytes).
var Body = []byte(`{"name":"DACH Tech Leaders","description":"Technology leaders in German-speaking regions",
"leadProviderCriteria":[{"provider":"baseProvider","type":"person","filters":{"job_title":["CTO","VP Engineering","Head of Engineering"],
"location":{"country":["Germany","Austria","Switzerland"]},"company":{"employee_size":{"min":50,"max":5000}},"skills":["go","kubernetes"]}}],
"customFilterCriteria":[{"type":"maxPeoplePerCompany","value":2},{"type":"minDaysUntilReuse","value":30}],
"crmFilters":{"provider":"bullhorn","textSearch":"Marketing*","filters":[{"path":"status","mode":"equals","value":"active","exclude":false}]},
"leadsPerList":20,"activeUntil":null}`)

// Run performs the load and returns what it measured.
func Run(ctx context.Context, cfg Config) (Result, error) {
	if cfg.BaseURL == "" || cfg.Token == "" || cfg.Concurrency < 1 || (cfg.Duration <= 0 && cfg.Requests <= 0) {
		return Result{}, errors.New("loadgen: BaseURL, Token, Concurrency >= 1 and a Duration or Requests bound are required")
	}
	client := cfg.Client
	if client == nil {
		client = &http.Client{
			Timeout: 30 * time.Second,
			Transport: &http.Transport{
				MaxIdleConns:        cfg.Concurrency * 2,
				MaxIdleConnsPerHost: cfg.Concurrency * 2,
				MaxConnsPerHost:     cfg.Concurrency * 2,
			},
		}
	}
	if cfg.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.Duration)
		defer cancel()
	}
	url := strings.TrimSuffix(cfg.BaseURL, "/") + "/api/v1/entities/icps"

	var (
		issued   atomic.Int64
		mu       sync.Mutex
		res      = Result{Statuses: map[int]int{}}
		lats     = make([]time.Duration, 0, 1<<16)
		wg       sync.WaitGroup
		start    = time.Now()
		recordFn = func(status int, lat time.Duration, pending, readFail bool, errText string) {
			mu.Lock()
			defer mu.Unlock()
			res.Statuses[status]++
			if status == http.StatusCreated {
				res.Creates++
				lats = append(lats, lat)
			} else {
				res.Errors++
				if res.FirstError == "" {
					res.FirstError = errText
				}
			}
			if pending {
				res.Pending++
			}
			if readFail {
				res.ReadFailures++
			}
		}
	)
	for w := 0; w < cfg.Concurrency; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				n := issued.Add(1)
				if cfg.Requests > 0 && n > int64(cfg.Requests) {
					return
				}
				t0 := time.Now()
				status, id, pending, errText := create(ctx, client, url, cfg.Token)
				lat := time.Since(t0)
				if ctx.Err() != nil && status == 0 {
					return // cut off by the end of the run, not a failure
				}
				readFail := false
				if status == http.StatusCreated && cfg.VerifyEvery > 0 && n%int64(cfg.VerifyEvery) == 0 {
					// The read must not be cut off by the end of the run.
					rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
					readFail = !readable(rctx, client, url+"/"+id, cfg.Token)
					cancel()
				}
				recordFn(status, lat, pending, readFail, errText)
			}
		}()
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	slices.Sort(lats)
	res.P50, res.P90, res.P99 = pct(lats, 0.50), pct(lats, 0.90), pct(lats, 0.99)
	if len(lats) > 0 {
		res.Max = lats[len(lats)-1]
	}
	return res, nil
}

func create(ctx context.Context, c *http.Client, url, token string) (status int, id string, pending bool, errText string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(Body))
	if err != nil {
		return 0, "", false, err.Error()
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", false, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		return resp.StatusCode, "", false, fmt.Sprintf("%d %s", resp.StatusCode, bytes.TrimSpace(body))
	}
	var icp struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(body, &icp)
	return resp.StatusCode, icp.ID, resp.Header.Get("ICP-Consistency") == "pending", ""
}

func readable(ctx context.Context, c *http.Client, url, token string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := c.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode == http.StatusOK
}

func pct(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted)-1) * q)
	return sorted[i].Round(10 * time.Microsecond)
}
