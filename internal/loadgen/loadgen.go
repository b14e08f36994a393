// Package loadgen drives creates against a running icpd over HTTP and
// measures what a client sees: throughput, latency percentiles, status codes,
// and whether each created ICP is readable by its creator at once.
package loadgen

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
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

	// Interval, when positive, makes the run call OnInterval with what each
	// interval of that length saw, and once more with the rest at the end:
	// a fall of the rate over a long run shows while it runs.
	Interval time.Duration
	// OnInterval receives each interval's report, in order, from one
	// goroutine; a slow OnInterval delays the next report, never a request.
	OnInterval func(Interval)
	// Memory, when set, is sampled at the end of each interval (e.g. the
	// resident memory of the service, ProcRSS); an error leaves the
	// interval's RSS at 0.
	Memory func() (uint64, error)
	// Ticks and Now replace the interval's ticker and the clock (tests);
	// with Ticks set, Interval only needs to be positive.
	Ticks <-chan time.Time
	Now   func() time.Time
}

// Interval is what one reporting interval of a run saw.
type Interval struct {
	// From and To are the interval's bounds, as offsets from the start.
	From, To time.Duration
	Creates  int
	Errors   int
	P50, P99 time.Duration
	// RSS is Config.Memory's sample at the end of the interval (0: none).
	RSS uint64
}

// Rate is the interval's creates per second.
func (iv Interval) Rate() float64 {
	d := iv.To - iv.From
	if d <= 0 {
		return 0
	}
	return float64(iv.Creates) / d.Seconds()
}

// String is one line of the running report.
func (iv Interval) String() string {
	s := fmt.Sprintf("%7s-%-7s creates %6d = %6.0f/s  p50 %-9s p99 %-9s errors %d",
		iv.From.Round(time.Second), iv.To.Round(time.Second), iv.Creates, iv.Rate(), iv.P50, iv.P99, iv.Errors)
	if iv.RSS > 0 {
		s += fmt.Sprintf("  rss %.0f MiB", float64(iv.RSS)/(1<<20))
	}
	return s
}

// requestTimeout bounds one request of the run.
const requestTimeout = 30 * time.Second

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
	// fasthttp's client, not net/http's: the load generator shares the
	// machine with the service it measures, and net/http's client cost
	// about a fifth of the two cores at the create rate icpctl load
	// reaches, taken from the service under test.
	client, path, err := hostClient(cfg.BaseURL, cfg.Concurrency)
	if err != nil {
		return Result{}, err
	}
	if cfg.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cfg.Duration)
		defer cancel()
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	t := &tally{res: Result{Statuses: map[int]int{}}, lats: make([]time.Duration, 0, 1<<16)}
	w := worker{cfg: cfg, client: client, target: path + "/api/v1/entities/icps", auth: "Bearer " + cfg.Token, tally: t}
	start := now()
	var wg sync.WaitGroup
	for i := 0; i < cfg.Concurrency; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.loop(ctx)
		}()
	}
	report, stopReports := t.startReports(cfg, start)
	wg.Wait()
	end := now()
	t.res.Elapsed = end.Sub(start)
	stopReports()
	if report != nil {
		report(end)
	}
	return t.finish(), nil
}

// tally is what the run's clients measured so far, under mu.
type tally struct {
	issued atomic.Int64 // creates begun, numbered from 1
	mu     sync.Mutex
	res    Result
	lats   []time.Duration
	cur    interval // this reporting interval
}

// record counts one create's outcome in the run and in the current interval.
func (t *tally) record(status int, lat time.Duration, pending, readFail bool, errText string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.res.Statuses[status]++
	if status == http.StatusCreated {
		t.res.Creates++
		t.lats = append(t.lats, lat)
		t.cur.creates++
		if len(t.cur.lats) < maxIntervalSamples {
			t.cur.lats = append(t.cur.lats, lat)
		}
	} else {
		t.res.Errors++
		t.cur.errors++
		if t.res.FirstError == "" {
			t.res.FirstError = errText
		}
	}
	if pending {
		t.res.Pending++
	}
	if readFail {
		t.res.ReadFailures++
	}
}

// worker is one client of the run.
type worker struct {
	cfg          Config
	client       *fasthttp.HostClient
	target, auth string
	tally        *tally
}

// loop creates until ctx ends or the run's Requests are all issued.
func (w worker) loop(ctx context.Context) {
	for ctx.Err() == nil {
		n := w.tally.issued.Add(1)
		if w.cfg.Requests > 0 && n > int64(w.cfg.Requests) {
			return
		}
		t0 := time.Now()
		status, id, pending, errText := create(w.client, w.target, w.auth)
		lat := time.Since(t0)
		readFail := false
		if status == http.StatusCreated && w.cfg.VerifyEvery > 0 && n%int64(w.cfg.VerifyEvery) == 0 {
			readFail = !readable(w.client, w.target+"/"+id, w.auth)
		}
		w.tally.record(status, lat, pending, readFail, errText)
	}
}

// startReports, when the run reports intervals, starts the goroutine that
// hands each tick's interval to cfg.OnInterval. It returns report, which
// reports the interval ending at its argument (nil when the run does not
// report), and stop, which ends the goroutine and returns once it has; only
// after stop may report be called from elsewhere.
func (t *tally) startReports(cfg Config, start time.Time) (report func(to time.Time), stop func()) {
	if cfg.Interval <= 0 || cfg.OnInterval == nil {
		return nil, func() {}
	}
	from := start
	report = func(to time.Time) {
		t.mu.Lock()
		iv := t.cur
		t.cur = interval{lats: make([]time.Duration, 0, len(iv.lats))}
		t.mu.Unlock()
		cfg.OnInterval(iv.report(from.Sub(start), to.Sub(start), cfg.Memory))
		from = to
	}
	ticks, stopTicker := cfg.Ticks, func() {}
	if ticks == nil {
		tk := time.NewTicker(cfg.Interval)
		ticks, stopTicker = tk.C, tk.Stop
	}
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		for {
			select {
			case to := <-ticks:
				report(to)
			case <-done:
				return
			}
		}
	}()
	return report, func() { close(done); <-stopped; stopTicker() }
}

// finish returns the run's result with its latency percentiles; the run's
// clients must have stopped.
func (t *tally) finish() Result {
	lats := t.lats
	slices.Sort(lats)
	t.res.P50, t.res.P90, t.res.P99 = pct(lats, 0.50), pct(lats, 0.90), pct(lats, 0.99)
	if len(lats) > 0 {
		t.res.Max = lats[len(lats)-1]
	}
	return t.res
}

// maxIntervalSamples caps the latencies kept per reporting interval: an
// interval's percentiles are those of its first creates beyond it.
const maxIntervalSamples = 1 << 20

// interval accumulates one reporting interval.
type interval struct {
	creates, errors int
	lats            []time.Duration
}

func (iv interval) report(from, to time.Duration, memory func() (uint64, error)) Interval {
	slices.Sort(iv.lats)
	r := Interval{From: from, To: to, Creates: iv.creates, Errors: iv.errors, P50: pct(iv.lats, 0.50), P99: pct(iv.lats, 0.99)}
	if memory != nil {
		if rss, err := memory(); err == nil {
			r.RSS = rss
		}
	}
	return r
}

// ProcRSS returns a Config.Memory that reads the resident memory of the
// process pid from /proc/<pid>/status (Linux; elsewhere it always fails).
func ProcRSS(pid int) func() (uint64, error) {
	path := fmt.Sprintf("/proc/%d/status", pid)
	return func() (uint64, error) {
		b, err := os.ReadFile(path)
		if err != nil {
			return 0, err
		}
		return parseVmRSS(b)
	}
}

// parseVmRSS reads the VmRSS line ("VmRSS:   123456 kB") of a
// /proc/<pid>/status file.
func parseVmRSS(status []byte) (uint64, error) {
	for line := range bytes.Lines(status) {
		rest, ok := bytes.CutPrefix(line, []byte("VmRSS:"))
		if !ok {
			continue
		}
		f := strings.Fields(string(rest))
		if len(f) != 2 || f[1] != "kB" {
			break
		}
		kb, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil || kb > 1<<40 {
			break
		}
		return kb << 10, nil
	}
	return 0, errors.New("loadgen: no VmRSS line in kB")
}

// hostClient returns a client of baseURL's host with one keep-alive
// connection per client of the run, and baseURL's path.
func hostClient(baseURL string, conns int) (*fasthttp.HostClient, string, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, "", fmt.Errorf("loadgen: base URL %q: want http(s)://host[:port]", baseURL)
	}
	addr := u.Host
	if u.Port() == "" {
		port := "80"
		if u.Scheme == "https" {
			port = "443"
		}
		addr = net.JoinHostPort(u.Hostname(), port)
	}
	return &fasthttp.HostClient{
		Addr:         addr,
		IsTLS:        u.Scheme == "https",
		MaxConns:     conns,
		ReadTimeout:  requestTimeout,
		WriteTimeout: requestTimeout,
		// A client whose connection is still being handed back waits for
		// it rather than failing with ErrNoFreeConns.
		MaxConnWaitTimeout: requestTimeout,
	}, strings.TrimSuffix(u.Path, "/"), nil
}

func create(c *fasthttp.HostClient, target, auth string) (status int, id string, pending bool, errText string) {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(target)
	req.Header.SetHost(c.Addr)
	req.Header.SetMethod(http.MethodPost)
	req.Header.Set("Authorization", auth)
	req.Header.SetContentType("application/json")
	req.SetBodyRaw(Body)
	if err := c.DoTimeout(req, resp, requestTimeout); err != nil {
		return 0, "", false, err.Error()
	}
	body := resp.Body()
	if resp.StatusCode() != http.StatusCreated {
		return resp.StatusCode(), "", false, fmt.Sprintf("%d %s", resp.StatusCode(), bytes.TrimSpace(body))
	}
	// The id comes from the Location header rather than from decoding the
	// body: decoding a kilobyte of JSON per create would take CPU from the
	// service under test.
	loc := string(resp.Header.Peek("Location"))
	id = loc[strings.LastIndexByte(loc, '/')+1:]
	if id == "" {
		return 0, "", false, fmt.Sprintf("201 without the new ICP's Location: %q", loc)
	}
	return resp.StatusCode(), id, string(resp.Header.Peek("ICP-Consistency")) == "pending", ""
}

func readable(c *fasthttp.HostClient, target, auth string) bool {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(target)
	req.Header.SetHost(c.Addr)
	req.Header.Set("Authorization", auth)
	if err := c.DoTimeout(req, resp, requestTimeout); err != nil {
		return false
	}
	return resp.StatusCode() == http.StatusOK
}

func pct(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted)-1) * q)
	return sorted[i].Round(10 * time.Microsecond)
}
