package sqlitemodel

import (
	"context"

	"github.com/icpservice/icp/projections"
)

// Scan returns up to limit views (tombstones included) whose id sorts after
// the cursor after ("" : from the first), in id order (bytewise): a walk over
// the whole read model page by page, for audits. Each page is one snapshot;
// a write between two pages is seen or not depending on its id. A limit
// below 1 reads one view.
func (m *Model) Scan(ctx context.Context, after string, limit int) ([]projections.View, error) {
	if m.closed() {
		return nil, unavailable("scan", ErrClosed)
	}
	if limit <= 0 {
		limit = 1
	}
	rows, err := m.rdb.QueryContext(ctx, `SELECT `+viewColumns+` FROM icps i WHERE i.id > ? ORDER BY i.id LIMIT ?`, after, limit)
	if err != nil {
		return nil, unavailable("scan", err)
	}
	defer rows.Close()
	out := make([]projections.View, 0, limit)
	for rows.Next() {
		v, err := scanView(rows)
		if err != nil {
			return nil, unavailable("scan", err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, unavailable("scan", err)
	}
	return out, nil
}
