package esdbstore

import (
	"context"

	"golang.org/x/sync/errgroup"
)

// versionReads bounds the stream reads one StreamVersions call has in flight:
// the client multiplexes them on one connection, and a list page asks for
// up to a few hundred streams.
const versionReads = 16

// StreamVersions reads each stream backwards, one event: its last event's
// revision is the stream's version. EventStoreDB has no call that answers
// for several streams at once, so the reads run side by side (versionReads at
// a time). A stream the server does not find (never written, or deleted) is
// absent from the map.
func (s *Store) StreamVersions(ctx context.Context, streams []string) (map[string]uint64, error) {
	uniq := make(map[string]struct{}, len(streams))
	for _, st := range streams {
		if st != "" {
			uniq[st] = struct{}{}
		}
	}
	versions := make([]uint64, 0, len(uniq))
	names := make([]string, 0, len(uniq))
	for st := range uniq {
		names = append(names, st)
		versions = append(versions, 0)
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(versionReads)
	for i, st := range names {
		g.Go(func() error {
			v, err := s.streamVersion(gctx, st)
			if err != nil {
				return s.failed(gctx, "version of stream "+st, err)
			}
			versions[i] = v
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	out := make(map[string]uint64, len(names))
	for i, st := range names {
		if versions[i] > 0 {
			out[st] = versions[i]
		}
	}
	return out, nil
}
