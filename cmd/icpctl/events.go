package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/icpservice/icp/events"
)

// EventsCmd exports the event history as JSON Lines: one event per line, in
// global (position) order, written as it is read: the history is read a
// page at a time (see pageSizer) and each page is written out before the
// next is read, so memory does not grow with the history (with --icp, the
// ICP's own events are read the same way, from its stream).
//
// Each line is an object with id, type, schemaVersion, stream, icpId,
// version, position, time (when the store recorded it, RFC 3339 UTC),
// metadata and payload. metadata and payload are the stored JSON, byte for
// byte; only when the stored text spans several lines are its line breaks
// (insignificant whitespace in JSON) removed, so that every event stays on
// one line. Bytes that are not valid JSON (a corrupt event) are given as
// metadataBase64 / payloadBase64 instead, with metadata / payload null.
type EventsCmd struct {
	StoreFlags `embed:""`
	ICP        string `name:"icp" help:"Only the events of this ICP (its id)."`
	Type       string `name:"type" help:"Only events of this type: ICPCreated, ICPUpdated or ICPDeleted."`
	Since      string `name:"since" help:"Only events recorded at or after this time (RFC 3339)."`
	Until      string `name:"until" help:"Only events recorded before this time (RFC 3339)."`
	From       uint64 `name:"from" help:"Only events at this global position or later."`
	To         uint64 `name:"to" help:"Only events at this global position or earlier; --follow stops once it is reached."`
	Follow     bool   `name:"follow" short:"f" help:"After the history, keep streaming events as they are recorded, until interrupted (or --to)."`

	since, until time.Time
}

// Validate is called by kong after parsing: every problem at once.
func (c *EventsCmd) Validate() error {
	var errs []error
	if err := c.StoreFlags.validate(); err != nil {
		errs = append(errs, err)
	}
	if c.ICP != "" {
		if u, err := uuid.Parse(c.ICP); err != nil || u.String() != c.ICP {
			errs = append(errs, fmt.Errorf("--icp %q: want an ICP id (a lowercase UUID)", c.ICP))
		}
	}
	if c.Type != "" {
		if _, ok := events.CurrentSchema[c.Type]; !ok {
			errs = append(errs, fmt.Errorf("--type %q: want one of %s", c.Type, knownTypes()))
		}
	}
	parse := func(flag, s string) time.Time {
		if s == "" {
			return time.Time{}
		}
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			errs = append(errs, fmt.Errorf("--%s %q: want an RFC 3339 time, e.g. 2025-03-01T09:00:00Z", flag, s))
		}
		return t
	}
	c.since, c.until = parse("since", c.Since), parse("until", c.Until)
	if !c.since.IsZero() && !c.until.IsZero() && !c.since.Before(c.until) {
		errs = append(errs, fmt.Errorf("--since %s is not before --until %s", c.Since, c.Until))
	}
	if c.To != 0 && c.From > c.To {
		errs = append(errs, fmt.Errorf("--from %d is after --to %d", c.From, c.To))
	}
	if c.Follow && c.Until != "" {
		// Recording times need not grow with positions (clocks of several
		// writers), so no event tells that --until has passed for good.
		errs = append(errs, errors.New("--follow cannot end at --until: give --to (a position) to stop following"))
	}
	return errors.Join(errs...)
}

func knownTypes() string {
	var ts []string
	for t := range events.CurrentSchema {
		ts = append(ts, t)
	}
	slices.Sort(ts)
	return fmt.Sprint(ts)
}

// errReachedTo ends a Follow once --to is reached.
var errReachedTo = errors.New("reached --to")

// Run writes the matching events to stdout. It ends after the history (the
// store's head when it started, or --to), or with --follow when interrupted
// or when --to is reached.
func (c *EventsCmd) Run(g *Globals) error {
	ctx, stop := interruptible()
	defer stop()
	st, err := c.openStore(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	out := bufio.NewWriterSize(g.Stdout, 64<<10)
	defer out.Flush()

	after := c.From
	if after > 0 {
		after--
	}
	head, err := st.Head(ctx)
	if err != nil {
		return fmt.Errorf("event store head: %w", err)
	}
	after, done, err := c.history(ctx, st, out, after, head)
	if done {
		return err
	}
	if !c.Follow || (c.To != 0 && after >= c.To) {
		return out.Flush()
	}
	err = st.Follow(ctx, after, followBatch, func(recs []events.Recorded) error { return c.emit(out, recs) })
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		err = nil // interrupted: the normal end of --follow
	}
	return finish(err, out)
}

// emit writes the matching events of recs, in order, and flushes them; it
// returns errReachedTo once --to is reached.
func (c *EventsCmd) emit(out *bufio.Writer, recs []events.Recorded) error {
	for _, r := range recs {
		if c.To != 0 && r.Position > c.To {
			return errReachedTo
		}
		if c.matches(r) {
			if err := writeEvent(out, r); err != nil {
				return err
			}
		}
		if c.To != 0 && r.Position == c.To {
			return errReachedTo
		}
	}
	return out.Flush()
}

// history writes the matching events after position after up to head (the
// store's head at start) and returns the position a follow goes on from.
// done means Run ends here, with err (nil once --to is reached).
func (c *EventsCmd) history(ctx context.Context, st events.Store, out *bufio.Writer, after, head uint64) (_ uint64, done bool, err error) {
	if c.ICP == "" {
		return c.allHistory(ctx, st, out, after, head)
	}
	if done, err := c.streamHistory(ctx, st, out, after, head); done {
		return 0, true, err
	}
	return max(after, head), false, nil
}

// streamHistory writes the events of --icp's stream after position after up
// to head, reading the stream a page at a time; done and err are as history's.
func (c *EventsCmd) streamHistory(ctx context.Context, st events.Store, out *bufio.Writer, after, head uint64) (done bool, err error) {
	var pages pageSizer
	for from := uint64(1); ; {
		recs, err := st.ReadStreamPage(ctx, events.StreamID(c.ICP), from, pages.next())
		if errors.Is(err, events.ErrStreamNotFound) {
			return false, nil
		}
		if err != nil {
			return true, fmt.Errorf("read the events of %s: %w", c.ICP, err)
		}
		if len(recs) == 0 {
			return false, nil
		}
		pages.saw(recs)
		last := recs[len(recs)-1]
		from = last.Version + 1
		recs = slices.DeleteFunc(recs, func(r events.Recorded) bool { return r.Position <= after || r.Position > head })
		if err := c.emit(out, recs); err != nil {
			return true, finish(err, out)
		}
		if last.Position > head { // the stream's later events are later still
			return false, nil
		}
	}
}

// allHistory writes the matching events after position after up to head,
// reading the global order a page at a time, and returns the position of
// the last event it read; done and err are as history's.
func (c *EventsCmd) allHistory(ctx context.Context, st events.Store, out *bufio.Writer, after, head uint64) (_ uint64, done bool, err error) {
	var pages pageSizer
	for after < head {
		recs, err := st.ReadAll(ctx, after, pages.next())
		if err != nil {
			return 0, true, fmt.Errorf("read the events after position %d: %w", after, err)
		}
		if len(recs) == 0 {
			break
		}
		pages.saw(recs)
		recs = slices.DeleteFunc(recs, func(r events.Recorded) bool { return r.Position > head })
		if err := c.emit(out, recs); err != nil {
			return 0, true, finish(err, out)
		}
		if len(recs) == 0 {
			break
		}
		after = recs[len(recs)-1].Position
	}
	return after, false, nil
}

// pageSizer sizes the pages the history is read in, so that a page holds
// about pageBytes of events whatever their size: the event store's reads are
// bounded by a count of events, and an event may be as large as the largest
// request body the API accepted. It assumes the events to come are no larger
// than the largest seen so far; until one is seen, a page is firstPage
// events. The command holds one page at a time (TestEventsMemoryIsFlat).
type pageSizer struct{ largest int }

const (
	pageBytes = 1 << 20
	firstPage = 16
	maxPage   = 1024
	// followBatch bounds the batches of --follow once the history is out:
	// events as they are recorded, a few at a time.
	followBatch = 64
)

func (p *pageSizer) next() int {
	if p.largest == 0 {
		return firstPage
	}
	return max(1, min(maxPage, pageBytes/p.largest))
}

func (p *pageSizer) saw(recs []events.Recorded) {
	for _, r := range recs {
		p.largest = max(p.largest, len(r.Data)+len(r.Metadata))
	}
}

// finish flushes out and turns the end markers into success.
func finish(err error, out *bufio.Writer) error {
	if errors.Is(err, errReachedTo) {
		err = nil
	}
	return errors.Join(err, out.Flush())
}

func (c *EventsCmd) matches(r events.Recorded) bool {
	switch {
	case c.ICP != "" && r.ICPID() != c.ICP:
		return false
	case c.Type != "" && r.Type != c.Type:
		return false
	case !c.since.IsZero() && r.Time.Before(c.since):
		return false
	case !c.until.IsZero() && !r.Time.Before(c.until):
		return false
	}
	return true
}

// writeEvent writes one JSON line. It is built by hand rather than through
// encoding/json so that metadata and payload go out as stored: json.Marshal
// re-encodes a json.RawMessage (and escapes '<', '>' and '&' in it).
func writeEvent(w io.Writer, r events.Recorded) error {
	var b bytes.Buffer
	b.WriteString(`{"id":`)
	writeString(&b, r.ID)
	b.WriteString(`,"type":`)
	writeString(&b, r.Type)
	b.WriteString(`,"schemaVersion":`)
	b.WriteString(strconv.Itoa(r.SchemaVersion))
	b.WriteString(`,"stream":`)
	writeString(&b, r.StreamID)
	b.WriteString(`,"icpId":`)
	writeString(&b, r.ICPID())
	b.WriteString(`,"version":`)
	b.WriteString(strconv.FormatUint(r.Version, 10))
	b.WriteString(`,"position":`)
	b.WriteString(strconv.FormatUint(r.Position, 10))
	b.WriteString(`,"time":`)
	writeString(&b, r.Time.UTC().Format(time.RFC3339Nano))
	writeRaw(&b, "metadata", r.Metadata)
	writeRaw(&b, "payload", r.Data)
	b.WriteString("}\n")
	_, err := w.Write(b.Bytes())
	return err
}

func writeString(b *bytes.Buffer, s string) {
	enc, _ := json.Marshal(s) // a string always encodes
	b.Write(enc)
}

// writeRaw writes ,"name":<the stored JSON> (see EventsCmd).
func writeRaw(b *bytes.Buffer, name string, raw []byte) {
	b.WriteString(`,"` + name + `":`)
	switch {
	case len(raw) == 0:
		b.WriteString("null")
	case !json.Valid(raw):
		b.WriteString(`null,"` + name + `Base64":"` + base64.StdEncoding.EncodeToString(raw) + `"`)
	case bytes.ContainsAny(raw, "\r\n"):
		_ = json.Compact(b, raw) // valid, checked above
	default:
		b.Write(raw)
	}
}
