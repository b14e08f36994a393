// Package esdbtest is an in-process EventStoreDB server for tests. It serves
// the EventStoreDB gRPC protocol (the Streams and ServerFeatures services)
// over real gRPC on 127.0.0.1, built on the protobuf stubs that ship inside
// the client module, so that the unmodified esdb client drives it exactly as
// it drives a real server. Events live in memory.
//
// It models the server rules a client depends on; each is named in a comment
// starting with "Rule:". Faults can be injected: SetDown (the node is gone:
// calls and subscriptions abort, connections are refused; it comes back with
// its data), DropSubscriptions and DeleteStream (a soft delete).
//
// It does not model: the server's own system events in $all (only those that
// DeleteStream writes), real log positions and checkpoint timing, ACLs and
// authentication, TLS, clusters and gossip, persistent subscriptions,
// projections, links, stream metadata other than $maxCount and $tb, the
// append size limit, scavenging, or idempotency for the Any expected state.
//
// EventsServed counts the events it sent to clients, so that a test can
// show how much an operation read.
package esdbtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	"github.com/EventStore/EventStore-Client-Go/v4/protos/serverfeatures"
	"github.com/EventStore/EventStore-Client-Go/v4/protos/shared"
	api "github.com/EventStore/EventStore-Client-Go/v4/protos/streams"
)

// Version is the server version that ServerFeatures reports.
const Version = "24.10.0"

// Server is an in-process EventStoreDB node. Its methods are safe for
// concurrent use.
type Server struct {
	log  *memlog
	addr string // host:port, fixed for the server's life

	mu      sync.Mutex
	gs      *grpc.Server
	down    bool
	closed  bool
	subs    map[*subscription]struct{}
	serving sync.WaitGroup

	servedMu    sync.Mutex
	served      map[string]uint64 // events sent to clients, by stream
	servedTotal uint64
}

// Start starts a server for the test and stops it when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	s, err := New()
	if err != nil {
		t.Fatalf("esdbtest: %v", err)
	}
	t.Cleanup(s.Close)
	return s
}

// New starts a server listening on a free port of 127.0.0.1. Close stops it.
func New() (*Server, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	s := &Server{log: newMemlog(), addr: lis.Addr().String(), subs: make(map[*subscription]struct{}), served: make(map[string]uint64)}
	s.serve(lis)
	return s, nil
}

// ConnString is the connection string of the server: plaintext, one node.
func (s *Server) ConnString() string { return "esdb://" + s.addr + "?tls=false" }

// Addr is the server's host:port.
func (s *Server) Addr() string { return s.addr }

func (s *Server) serve(lis net.Listener) {
	gs := grpc.NewServer(
		// Rule: the server accepts the client's keepalive pings (every 10 s
		// by default, also while no call is active) without answering
		// "too many pings".
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: time.Second, PermitWithoutStream: true}),
	)
	api.RegisterStreamsServer(gs, &streamsService{srv: s})
	serverfeatures.RegisterServerFeaturesServer(gs, featuresService{})
	s.gs = gs
	s.serving.Add(1)
	go func() {
		defer s.serving.Done()
		_ = gs.Serve(lis) // returns when the server stops
	}()
}

// SetDown takes the node down (true) or brings it back (false). Down, every
// call in flight and every subscription is aborted (the client sees
// Unavailable) and new connections are refused. Back up, it listens on the
// same address with all its events.
func (s *Server) SetDown(down bool) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return errors.New("esdbtest: server closed")
	}
	if down == s.down {
		s.mu.Unlock()
		return nil
	}
	s.down = down
	gs := s.gs
	if !down {
		lis, err := net.Listen("tcp", s.addr)
		if err != nil {
			s.down = true
			s.mu.Unlock()
			return fmt.Errorf("esdbtest: listen again on %s: %w", s.addr, err)
		}
		s.serve(lis)
	}
	s.mu.Unlock()
	if down {
		gs.Stop()
	}
	return nil
}

// Close stops the server for good.
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	gs, down := s.gs, s.down
	s.mu.Unlock()
	if !down {
		gs.Stop()
	}
	s.serving.Wait()
}

// DropSubscriptions ends every active subscription with an Aborted error, as
// a server does when it drops a subscriber, and returns how many it dropped.
func (s *Server) DropSubscriptions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for sub := range s.subs {
		if sub.stop() {
			n++
		}
	}
	return n
}

// Subscriptions returns the number of active subscriptions.
func (s *Server) Subscriptions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for sub := range s.subs {
		if !sub.stopped() {
			n++
		}
	}
	return n
}

// DeleteStream soft-deletes stream: reads of it answer stream_not_found, its
// events stay in $all, and a $metadata event is written to "$$<stream>". An
// append may continue the stream from its last revision.
func (s *Server) DeleteStream(stream string) error {
	if !s.log.softDelete(stream) {
		return fmt.Errorf("esdbtest: stream %q not found", stream)
	}
	return nil
}

// WriteEvent appends one event to any stream, whatever its state, as another
// writer of the same server would (a system stream, another service's
// stream). It returns the event's position.
func (s *Server) WriteEvent(stream, eventType string, data []byte) uint64 {
	out := s.log.append(stream, expectation{kind: expAny}, []proposed{{
		id: uuid.New(), eventType: eventType, contentType: "application/json", data: data,
	}})
	return out.position
}

// WriteEventWithMetadata is WriteEvent with custom (user) metadata of the
// caller's choice: an event that imitates, or breaks, another writer's
// conventions.
func (s *Server) WriteEventWithMetadata(stream, eventType string, data, meta []byte) uint64 {
	out := s.log.append(stream, expectation{kind: expAny}, []proposed{{
		id: uuid.New(), eventType: eventType, contentType: "application/json", data: data, meta: meta,
	}})
	return out.position
}

// HardDeleteStream deletes stream for good, as a hard delete (tombstone)
// does: reads of it find nothing, and $all gets an event of type
// $streamDeleted in that stream. It returns the tombstone's position.
func (s *Server) HardDeleteStream(stream string) (uint64, error) {
	pos, ok := s.log.hardDelete(stream)
	if !ok {
		return 0, fmt.Errorf("esdbtest: stream %q not found", stream)
	}
	return pos, nil
}

// EventsServed returns how many events of stream the server has sent to
// clients so far, by stream reads, reads of $all and subscriptions alike: a
// test's measure of what an operation read.
func (s *Server) EventsServed(stream string) uint64 {
	s.servedMu.Lock()
	defer s.servedMu.Unlock()
	return s.served[stream]
}

// EventsServedTotal returns how many events of any stream the server has
// sent to clients so far (see EventsServed).
func (s *Server) EventsServedTotal() uint64 {
	s.servedMu.Lock()
	defer s.servedMu.Unlock()
	return s.servedTotal
}

// sendEvent sends r to a read or subscription and counts it as served.
func (s *Server) sendEvent(srv api.Streams_ReadServer, enc encoder, r *record) error {
	if err := srv.Send(enc.event(r)); err != nil {
		return err
	}
	s.servedMu.Lock()
	s.served[r.stream]++
	s.servedTotal++
	s.servedMu.Unlock()
	return nil
}

// subscription is an active subscription's handle for DropSubscriptions.
type subscription struct {
	once sync.Once
	drop chan struct{}
}

func (sub *subscription) stop() (first bool) {
	sub.once.Do(func() { close(sub.drop); first = true })
	return first
}

func (sub *subscription) stopped() bool {
	select {
	case <-sub.drop:
		return true
	default:
		return false
	}
}

func (s *Server) register() *subscription {
	sub := &subscription{drop: make(chan struct{})}
	s.mu.Lock()
	s.subs[sub] = struct{}{}
	s.mu.Unlock()
	return sub
}

func (s *Server) unregister(sub *subscription) {
	s.mu.Lock()
	delete(s.subs, sub)
	s.mu.Unlock()
}

var errDropped = status.Error(codes.Aborted, "esdbtest: subscription dropped by the server")

// subscribeAll serves a catch-up subscription to $all: stored events from
// the start position, then live ones.
func (s *Server) subscribeAll(o *api.ReadReq_Options_AllOptions, f *filter, enc encoder, srv api.Streams_ReadServer) error {
	sub := s.register()
	defer s.unregister(sub)
	// Rule: the first message of a subscription is its confirmation.
	if err := srv.Send(&api.ReadResp{Content: &api.ReadResp_Confirmation{Confirmation: &api.ReadResp_SubscriptionConfirmation{
		SubscriptionId: uuid.NewString(),
	}}}); err != nil {
		return err
	}
	next, err := s.allStart(o)
	if err != nil {
		return err
	}
	feed := &allFeed{s: s, f: f, enc: enc, srv: srv}
	caughtUp := false
	for {
		recs, wake := s.log.since(next)
		for _, r := range recs {
			if sub.stopped() {
				return errDropped
			}
			next++
			if err := feed.send(r); err != nil {
				return err
			}
		}
		if !caughtUp {
			caughtUp = true
			if err := feed.caughtUp(); err != nil {
				return err
			}
		}
		select {
		case <-wake:
		case <-sub.drop:
			return errDropped
		case <-srv.Context().Done():
			return status.FromContextError(context.Cause(srv.Context())).Err()
		}
	}
}

// allStart returns the index in the global log of the first record a
// subscription to $all with options o considers.
func (s *Server) allStart(o *api.ReadReq_Options_AllOptions) (int, error) {
	switch p := o.GetAllOption().(type) {
	case *api.ReadReq_Options_AllOptions_Start:
		return 0, nil
	case *api.ReadReq_Options_AllOptions_End:
		return s.log.length(), nil
	case *api.ReadReq_Options_AllOptions_Position:
		// Rule: a subscription's start position is exclusive: it delivers
		// the events after that position, not the one at it.
		return s.log.indexAfter(p.Position.GetCommitPosition()), nil
	default:
		return 0, status.Error(codes.InvalidArgument, "subscription without a start position")
	}
}

// allFeed sends one subscription to $all its events and checkpoints.
type allFeed struct {
	s          *Server
	f          *filter
	enc        encoder
	srv        api.Streams_ReadServer
	considered int    // events searched since the last checkpoint
	searched   uint64 // position searched to
}

// send considers record r: it sends it when it matches, and a checkpoint
// when one is due.
func (a *allFeed) send(r *record) error {
	a.searched = r.position
	if a.f.match(r) {
		if err := a.s.sendEvent(a.srv, a.enc, r); err != nil {
			return err
		}
	}
	// Rule: a filtered subscription sends a checkpoint every
	// window × multiplier events searched, matching or not, during
	// catch-up and live.
	if a.f != nil {
		a.considered++
		if a.considered >= a.f.checkpointEvery {
			a.considered = 0
			return a.checkpoint()
		}
	}
	return nil
}

// caughtUp ends the catch-up at the end of the stored events.
func (a *allFeed) caughtUp() error {
	// Rule: at the end of the stored events a filtered
	// subscription checkpoints where it searched to, then every
	// subscription sends caught_up before live events.
	if a.f != nil && a.considered > 0 {
		a.considered = 0
		if err := a.checkpoint(); err != nil {
			return err
		}
	}
	return a.srv.Send(&api.ReadResp{Content: &api.ReadResp_CaughtUp_{CaughtUp: &api.ReadResp_CaughtUp{}}})
}

// checkpoint sends a checkpoint at the position searched to.
func (a *allFeed) checkpoint() error {
	// Rule: a checkpoint carries the commit position (and the prepare
	// position) up to which the filter has searched.
	return a.srv.Send(&api.ReadResp{Content: &api.ReadResp_Checkpoint_{Checkpoint: &api.ReadResp_Checkpoint{
		CommitPosition: a.searched, PreparePosition: a.searched,
	}}})
}

// featuresService serves event_store.client.server_features.
type featuresService struct {
	serverfeatures.UnimplementedServerFeaturesServer
}

// GetSupportedMethods reports the server's version and methods.
//
// Rule: ServerFeatures is optional, but when it is served the version must
// be numeric and dotted ("24.10.0"): the client refuses to connect otherwise.
func (featuresService) GetSupportedMethods(context.Context, *shared.Empty) (*serverfeatures.SupportedMethods, error) {
	const streams = "event_store.client.streams.streams"
	return &serverfeatures.SupportedMethods{
		EventStoreServerVersion: Version,
		Methods: []*serverfeatures.SupportedMethod{
			{MethodName: "read", ServiceName: streams},
			{MethodName: "append", ServiceName: streams},
		},
	}, nil
}
