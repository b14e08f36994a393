package esdbtest

import (
	"encoding/binary"
	"errors"
	"io"
	"math"
	"regexp"
	"strconv"
	"strings"

	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/EventStore/EventStore-Client-Go/v4/protos/shared"
	api "github.com/EventStore/EventStore-Client-Go/v4/protos/streams"
)

// streamsService serves event_store.client.streams.Streams: Append, Read
// (stream and $all reads, $all subscriptions). Delete, Tombstone and
// BatchAppend answer Unimplemented; use Server.DeleteStream for deletes.
type streamsService struct {
	api.UnimplementedStreamsServer
	srv *Server
}

// Metadata keys of a recorded event, set by the server.
const (
	metaType        = "type"
	metaContentType = "content-type"
	metaCreated     = "created"
)

func (s *streamsService) Append(stream api.Streams_AppendServer) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	opts := first.GetOptions()
	if opts == nil {
		return status.Error(codes.InvalidArgument, "the first append message must carry the options")
	}
	name := string(opts.GetStreamIdentifier().GetStreamName())
	if name == "" {
		return status.Error(codes.InvalidArgument, "empty stream name")
	}
	exp, err := expectedRevision(opts)
	if err != nil {
		return err
	}
	var evs []proposed
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		e, err := proposedEvent(msg)
		if err != nil {
			return err
		}
		evs = append(evs, e)
	}
	if len(evs) == 0 {
		return status.Error(codes.InvalidArgument, "an append needs at least one event")
	}
	out := s.srv.log.append(name, exp, evs)
	if out.deleted {
		// Rule: an append to a hard-deleted stream fails (see
		// streamDeleted).
		return streamDeleted(stream, name)
	}
	return stream.SendAndClose(appendResponse(out, exp))
}

// expectedRevision is the expected stream revision of an append's options.
func expectedRevision(opts *api.AppendReq_Options) (expectation, error) {
	switch o := opts.GetExpectedStreamRevision().(type) {
	case *api.AppendReq_Options_Revision:
		return expectation{kind: expRevision, revision: o.Revision}, nil
	case *api.AppendReq_Options_NoStream:
		return expectation{kind: expNoStream}, nil
	case *api.AppendReq_Options_Any:
		return expectation{kind: expAny}, nil
	case *api.AppendReq_Options_StreamExists:
		return expectation{kind: expStreamExists}, nil
	default:
		return expectation{}, status.Error(codes.InvalidArgument, "no expected stream revision")
	}
}

// proposedEvent is the event an append message after the options proposes.
func proposedEvent(msg *api.AppendReq) (proposed, error) {
	pm := msg.GetProposedMessage()
	if pm == nil {
		return proposed{}, status.Error(codes.InvalidArgument, "append messages after the options must be proposed events")
	}
	id, err := uuidFromProto(pm.GetId())
	if err != nil {
		return proposed{}, status.Errorf(codes.InvalidArgument, "event id: %v", err)
	}
	// Rule: every proposed event carries "type" and "content-type" in
	// its metadata; the server refuses an append without them.
	typ, ok := pm.GetMetadata()[metaType]
	if !ok || typ == "" {
		return proposed{}, status.Error(codes.InvalidArgument, "required metadata property is missing: type")
	}
	ct, ok := pm.GetMetadata()[metaContentType]
	if !ok {
		return proposed{}, status.Error(codes.InvalidArgument, "required metadata property is missing: content-type")
	}
	return proposed{id: id, eventType: typ, contentType: ct, data: pm.GetData(), meta: pm.GetCustomMetadata()}, nil
}

// streamDeleted is the server's answer to an append to, or a read of, a
// hard-deleted stream.
//
// Rule: it is the gRPC status FailedPrecondition with the trailers
// "exception: stream-deleted" and "stream-name", which the client turns into
// ErrorCodeStreamDeleted (not a stream_not_found read message).
func streamDeleted(call grpc.ServerStream, name string) error {
	call.SetTrailer(metadata.Pairs("exception", "stream-deleted", "stream-name", name))
	return status.Errorf(codes.FailedPrecondition, "Event stream '%s' is deleted.", name)
}

// appendResponse encodes an append's outcome.
//
// Rule: a wrong expected version is a normal append response
// (wrong_expected_version), not a gRPC error; it carries the stream's
// current revision (or no stream) and what was expected, in both the current
// fields and the 20.6.0 ones.
func appendResponse(out appendOutcome, exp expectation) *api.AppendResp {
	if out.ok {
		return &api.AppendResp{Result: &api.AppendResp_Success_{Success: &api.AppendResp_Success{
			CurrentRevisionOption: &api.AppendResp_Success_CurrentRevision{CurrentRevision: out.revision},
			PositionOption: &api.AppendResp_Success_Position{Position: &api.AppendResp_Position{
				CommitPosition: out.position, PreparePosition: out.position,
			}},
		}}}
	}
	w := &api.AppendResp_WrongExpectedVersion{}
	if out.hasCurrent {
		w.CurrentRevisionOption_20_6_0 = &api.AppendResp_WrongExpectedVersion_CurrentRevision_20_6_0{CurrentRevision_20_6_0: out.current}
		w.CurrentRevisionOption = &api.AppendResp_WrongExpectedVersion_CurrentRevision{CurrentRevision: out.current}
	} else {
		w.CurrentRevisionOption_20_6_0 = &api.AppendResp_WrongExpectedVersion_NoStream_20_6_0{NoStream_20_6_0: &shared.Empty{}}
		w.CurrentRevisionOption = &api.AppendResp_WrongExpectedVersion_CurrentNoStream{CurrentNoStream: &shared.Empty{}}
	}
	switch exp.kind {
	case expRevision:
		w.ExpectedRevisionOption_20_6_0 = &api.AppendResp_WrongExpectedVersion_ExpectedRevision_20_6_0{ExpectedRevision_20_6_0: exp.revision}
		w.ExpectedRevisionOption = &api.AppendResp_WrongExpectedVersion_ExpectedRevision{ExpectedRevision: exp.revision}
	case expNoStream:
		w.ExpectedRevisionOption = &api.AppendResp_WrongExpectedVersion_ExpectedNoStream{ExpectedNoStream: &shared.Empty{}}
	case expStreamExists:
		w.ExpectedRevisionOption_20_6_0 = &api.AppendResp_WrongExpectedVersion_StreamExists_20_6_0{StreamExists_20_6_0: &shared.Empty{}}
		w.ExpectedRevisionOption = &api.AppendResp_WrongExpectedVersion_ExpectedStreamExists{ExpectedStreamExists: &shared.Empty{}}
	case expAny:
		w.ExpectedRevisionOption_20_6_0 = &api.AppendResp_WrongExpectedVersion_Any_20_6_0{Any_20_6_0: &shared.Empty{}}
		w.ExpectedRevisionOption = &api.AppendResp_WrongExpectedVersion_ExpectedAny{ExpectedAny: &shared.Empty{}}
	}
	return &api.AppendResp{Result: &api.AppendResp_WrongExpectedVersion_{WrongExpectedVersion: w}}
}

func (s *streamsService) Read(req *api.ReadReq, srv api.Streams_ReadServer) error {
	o := req.GetOptions()
	if o == nil {
		return status.Error(codes.InvalidArgument, "read without options")
	}
	if o.GetResolveLinks() {
		return status.Error(codes.Unimplemented, "esdbtest: resolving links is not modelled")
	}
	f, err := newFilter(o.GetFilter())
	if err != nil {
		return err
	}
	enc := encoder{structured: o.GetUuidOption().GetString_() == nil}
	backwards := o.GetReadDirection() == api.ReadReq_Options_Backwards
	switch c := o.GetCountOption().(type) {
	case *api.ReadReq_Options_Count:
		if o.GetStream() != nil {
			return s.readStream(o.GetStream(), backwards, c.Count, enc, srv)
		}
		if o.GetAll() != nil {
			return s.readAll(o.GetAll(), backwards, c.Count, f, enc, srv)
		}
		return status.Error(codes.InvalidArgument, "read of neither a stream nor $all")
	case *api.ReadReq_Options_Subscription:
		if backwards {
			return status.Error(codes.InvalidArgument, "a subscription reads forwards")
		}
		if o.GetAll() == nil {
			return status.Error(codes.Unimplemented, "esdbtest: only subscriptions to $all are modelled")
		}
		return s.srv.subscribeAll(o.GetAll(), f, enc, srv)
	default:
		return status.Error(codes.InvalidArgument, "read without a count or subscription option")
	}
}

// readStream answers a plain read of one stream.
//
// Rule: a plain read sends only events (or stream_not_found); never a
// checkpoint, caught-up or confirmation message (the client panics on them).
func (s *streamsService) readStream(o *api.ReadReq_Options_StreamOptions, backwards bool, count uint64, enc encoder, srv api.Streams_ReadServer) error {
	name := string(o.GetStreamIdentifier().GetStreamName())
	var from uint64
	fromEnd := false
	switch r := o.GetRevisionOption().(type) {
	case *api.ReadReq_Options_StreamOptions_Revision:
		from = r.Revision
	case *api.ReadReq_Options_StreamOptions_Start:
		from = 0
	case *api.ReadReq_Options_StreamOptions_End:
		fromEnd = true
	default:
		return status.Error(codes.InvalidArgument, "stream read without a revision option")
	}
	recs, found, deleted := s.srv.log.readStream(name, from, fromEnd, backwards, count)
	if deleted {
		return streamDeleted(srv, name)
	}
	if !found {
		// Rule: a missing stream is answered with a stream_not_found read
		// message, not with a gRPC error.
		return srv.Send(&api.ReadResp{Content: &api.ReadResp_StreamNotFound_{StreamNotFound: &api.ReadResp_StreamNotFound{
			StreamIdentifier: &shared.StreamIdentifier{StreamName: []byte(name)},
		}}})
	}
	for _, r := range recs {
		if err := s.srv.sendEvent(srv, enc, r); err != nil {
			return err
		}
	}
	return nil
}

// readAll answers a plain read of $all.
//
// Rule: reading forwards from a position includes the event at that
// position; reading backwards from a position returns the events before it.
func (s *streamsService) readAll(o *api.ReadReq_Options_AllOptions, backwards bool, count uint64, f *filter, enc encoder, srv api.Streams_ReadServer) error {
	log := s.srv.log
	n := log.length()
	var i int // index of the first record to consider, in the read's direction
	switch p := o.GetAllOption().(type) {
	case *api.ReadReq_Options_AllOptions_Start:
		i = 0
		if backwards {
			i = -1
		}
	case *api.ReadReq_Options_AllOptions_End:
		i = n
		if backwards {
			i = n - 1
		}
	case *api.ReadReq_Options_AllOptions_Position:
		i = log.indexAtOrAfter(p.Position.GetCommitPosition())
		if backwards {
			i--
		}
	default:
		return status.Error(codes.InvalidArgument, "$all read without a position option")
	}
	var sent uint64
	for sent < count && i >= 0 && i < n {
		r := log.at(i)
		if backwards {
			i--
		} else {
			i++
		}
		if !f.match(r) {
			continue
		}
		if err := s.srv.sendEvent(srv, enc, r); err != nil {
			return err
		}
		sent++
	}
	return nil
}

// encoder writes recorded events in the form the read asked for.
type encoder struct {
	structured bool // UUIDs as two int64s (else as strings)
}

// event encodes a recorded event.
//
// Rule: every recorded event carries "type", "content-type" and "created"
// in its metadata; "created" is decimal .NET ticks (100 ns) since the Unix
// epoch. A missing or non-numeric "created" makes the client call
// log.Fatalf.
func (e encoder) event(r *record) *api.ReadResp {
	var id *shared.UUID
	if e.structured {
		most, least := int64(binary.BigEndian.Uint64(r.id[:8])), int64(binary.BigEndian.Uint64(r.id[8:]))
		id = &shared.UUID{Value: &shared.UUID_Structured_{Structured: &shared.UUID_Structured{
			MostSignificantBits: most, LeastSignificantBits: least,
		}}}
	} else {
		id = &shared.UUID{Value: &shared.UUID_String_{String_: r.id.String()}}
	}
	return &api.ReadResp{Content: &api.ReadResp_Event{Event: &api.ReadResp_ReadEvent{
		Event: &api.ReadResp_ReadEvent_RecordedEvent{
			Id:               id,
			StreamIdentifier: &shared.StreamIdentifier{StreamName: []byte(r.stream)},
			StreamRevision:   r.revision,
			PreparePosition:  r.position,
			CommitPosition:   r.position,
			Metadata: map[string]string{
				metaType:        r.eventType,
				metaContentType: r.contentType,
				metaCreated:     strconv.FormatInt(r.created, 10),
			},
			CustomMetadata: r.meta,
			Data:           r.data,
		},
		Position: &api.ReadResp_ReadEvent_CommitPosition{CommitPosition: r.position},
	}}}
}

func uuidFromProto(u *shared.UUID) (uuid.UUID, error) {
	if st := u.GetStructured(); st != nil {
		var id uuid.UUID
		binary.BigEndian.PutUint64(id[:8], uint64(st.GetMostSignificantBits()))
		binary.BigEndian.PutUint64(id[8:], uint64(st.GetLeastSignificantBits()))
		return id, nil
	}
	if s := u.GetString_(); s != "" {
		return uuid.Parse(s)
	}
	return uuid.Nil, errors.New("missing")
}

// filter is a server-side filter of $all.
//
// Rule: a filter matches the stream name or the event type, by any of a set
// of prefixes or by a regular expression (Go's syntax here, .NET's on the
// real server).
type filter struct {
	onType   bool
	prefixes []string
	re       *regexp.Regexp
	// window is the search window: every checkpointEvery events considered,
	// a subscription sends a checkpoint.
	checkpointEvery int
}

// defaultWindow is the server's search window when the client leaves it to
// the server (the "count" window option).
const defaultWindow = 32

func newFilter(o *api.ReadReq_Options_FilterOptions) (*filter, error) {
	if o == nil {
		return nil, nil
	}
	f := &filter{}
	var x *api.ReadReq_Options_FilterOptions_Expression
	switch e := o.GetFilter().(type) {
	case *api.ReadReq_Options_FilterOptions_StreamIdentifier:
		x = e.StreamIdentifier
	case *api.ReadReq_Options_FilterOptions_EventType:
		x, f.onType = e.EventType, true
	default:
		return nil, status.Error(codes.InvalidArgument, "filter on neither stream name nor event type")
	}
	f.prefixes = x.GetPrefix()
	if x.GetRegex() != "" {
		re, err := regexp.Compile(x.GetRegex())
		if err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "filter regex: %v", err)
		}
		f.re = re
	}
	if len(f.prefixes) == 0 && f.re == nil {
		return nil, status.Error(codes.InvalidArgument, "filter with neither prefixes nor regex")
	}
	window := defaultWindow
	if m := o.GetMax(); m > 0 {
		window = int(min(m, math.MaxInt32))
	}
	mult := int(max(o.GetCheckpointIntervalMultiplier(), 1))
	f.checkpointEvery = window * mult
	return f, nil
}

// match reports whether r passes the filter (a nil filter passes all).
func (f *filter) match(r *record) bool {
	if f == nil {
		return true
	}
	subject := r.stream
	if f.onType {
		subject = r.eventType
	}
	if f.re != nil {
		return f.re.MatchString(subject)
	}
	for _, p := range f.prefixes {
		if strings.HasPrefix(subject, p) {
			return true
		}
	}
	return false
}
