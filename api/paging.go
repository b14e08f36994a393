package api

import (
	"encoding/base64"
	"net/url"
	"strconv"
	"strings"

	"github.com/icpservice/icp/commands"
)

// MaxPageLimit is the largest page a list answers at once.
const MaxPageLimit = 1000

// page is a list request's paging: after is the position cursor (0: from the
// start), limit the page size (0: everything).
type page struct {
	after uint64
	limit int
}

// cursorPrefix versions the cursor's form, so it can change without old
// cursors being misread.
const cursorPrefix = "p1."

// encodeCursor makes the opaque cursor that continues after position.
func encodeCursor(position uint64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(cursorPrefix + strconv.FormatUint(position, 10)))
}

func decodeCursor(s string) (uint64, bool) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || !strings.HasPrefix(string(b), cursorPrefix) {
		return 0, false
	}
	n, err := strconv.ParseUint(string(b[len(cursorPrefix):]), 10, 64)
	return n, err == nil && n > 0
}

// parsePage reads the optional limit and cursor query parameters; every
// problem is a detail of one 400. Other parameters are ignored.
func parsePage(rawQuery string) (page, error) {
	var pg page
	if rawQuery == "" {
		return pg, nil
	}
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return pg, badRequest("the query string is malformed")
	}
	var details []commands.Detail
	if vs, ok := q["limit"]; ok {
		n, err := strconv.Atoi(vs[0])
		switch {
		case len(vs) > 1:
			details = append(details, commands.Detail{Path: "limit", Message: "is given more than once"})
		case err != nil || n < 1 || n > MaxPageLimit:
			details = append(details, commands.Detail{Path: "limit", Message: "must be an integer from 1 to " + strconv.Itoa(MaxPageLimit)})
		default:
			pg.limit = n
		}
	}
	if vs, ok := q["cursor"]; ok {
		pos, valid := decodeCursor(vs[0])
		switch {
		case len(vs) > 1:
			details = append(details, commands.Detail{Path: "cursor", Message: "is given more than once"})
		case !valid:
			details = append(details, commands.Detail{Path: "cursor", Message: "is not a cursor this service issued"})
		default:
			pg.after = pos
		}
	}
	if len(details) > 0 {
		return page{}, badRequest("the query parameters are invalid", details...)
	}
	return pg, nil
}
