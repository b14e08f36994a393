package sqlitemodel_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/icpservice/icp/projections"
	"github.com/icpservice/icp/projections/sqlitemodel"
)

func schemaOf(t *testing.T, path string) string {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rows, err := db.Query(`SELECT type, name, tbl_name, COALESCE(sql, '') FROM sqlite_master ORDER BY name`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	space := regexp.MustCompile(`\s+`)
	var out []string
	for rows.Next() {
		var typ, name, tbl, ddl string
		if err := rows.Scan(&typ, &name, &tbl, &ddl); err != nil {
			t.Fatal(err)
		}
		// ALTER TABLE RENAME quotes the new name in the stored DDL.
		ddl = space.ReplaceAllString(strings.ReplaceAll(ddl, `"`, ""), " ")
		out = append(out, strings.Join([]string{typ, name, tbl, ddl}, " | "))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return strings.Join(out, "\n")
}

// A swapped-in read model has exactly the schema the migrations give a new
// file: tables, columns, constraints, index names. This fails when a
// migration is added without updating the rebuild's tables.
func TestShadowSchemaMatchesMigrations(t *testing.T) {
	dir := t.TempDir()
	fresh := filepath.Join(dir, "fresh.db")
	m := open(t, fresh, sqlitemodel.Options{})
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	rebuilt := filepath.Join(dir, "rebuilt.db")
	b, err := sqlitemodel.OpenBuilder(context.Background(), rebuilt)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Swap(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if got, want := schemaOf(t, rebuilt), schemaOf(t, fresh); got != want {
		t.Fatalf("schema after a rebuild:\n%s\nwant (migrations):\n%s", got, want)
	}
}

// Put is all or nothing; Close without Swap leaves the live read model as it
// was; tables left by a rebuild that died are dropped by the next one.
func TestBuilderPutIsAtomicAndUnswappedWorkIsDropped(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rm.db")
	ctx := context.Background()
	m := open(t, path, sqlitemodel.Options{})
	mustApply(t, m, view("live", 1))

	b, err := sqlitemodel.OpenBuilder(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Put(ctx, []projections.View{view("a", 1), view("b", 1)}, nil); err != nil {
		t.Fatal(err)
	}
	// "a" again as created, beside a new "c": refused, and "c" not written.
	if err := b.Put(ctx, []projections.View{view("c", 1), view("a", 1)}, nil); err == nil {
		t.Fatal("a created view whose id is stored was accepted")
	}
	got, err := b.Load(ctx, []string{"a", "b", "c"})
	if err != nil || len(got) != 2 || got["a"].Version != 1 {
		t.Fatalf("after a refused Put: %v, %v", got, err)
	}
	// Replacing moves the membership too.
	a2 := view("a", 2)
	a2.UserIDs = []string{"user_2"}
	if err := b.Put(ctx, nil, []projections.View{a2}); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if v, err := m.Get(ctx, "live"); err != nil || v.Version != 1 {
		t.Fatalf("live view after an unswapped rebuild: %+v, %v", v, err)
	}
	if _, err := m.Get(ctx, "a"); !errors.Is(err, projections.ErrNotFound) {
		t.Fatalf("an unswapped rebuild's view is live: %v", err)
	}

	// A rebuild that died leaves its tables; the next one starts empty.
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE icps_rebuild (id TEXT PRIMARY KEY, tenant TEXT, version INTEGER, position INTEGER, deleted INTEGER, created_by TEXT, user_ids TEXT, doc BLOB);
		INSERT INTO icps_rebuild VALUES ('ghost', 't', 1, 1, 0, 'u', '[]', '{}');
		CREATE TABLE icps_replaced (x);`); err != nil {
		t.Fatal(err)
	}
	b, err = sqlitemodel.OpenBuilder(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if got, err := b.Load(ctx, []string{"ghost"}); err != nil || len(got) != 0 {
		t.Fatalf("leftover rows in a new rebuild: %v, %v", got, err)
	}
	if err := b.Put(ctx, []projections.View{a2}, nil); err != nil {
		t.Fatal(err)
	}
	if err := b.Swap(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if l, err := m.List(ctx, "org_a", "user_2", 0, 0); err != nil || len(l) != 1 || l[0].ID != "a" {
		t.Fatalf("List after the swap: %+v, %v", l, err)
	}
	if _, err := m.Get(ctx, "live"); !errors.Is(err, projections.ErrNotFound) {
		t.Fatalf("a view the rebuild did not write survived the swap: %v", err)
	}
	if err := b.Put(ctx, []projections.View{view("late", 1)}, nil); !errors.Is(err, sqlitemodel.ErrSwapped) {
		t.Fatalf("Put after Swap: %v", err)
	}
}

// tableRows is every row of the read model's tables at path (the tables
// named with suffix), in key order, as text.
func tableRows(t *testing.T, path, suffix string) string {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var out []string
	for _, q := range []string{
		`SELECT id, tenant, version, position, deleted, created_by, user_ids, hex(doc) FROM icps` + suffix + ` ORDER BY id`,
		`SELECT tenant, hex(user_id), position, id, '', '', '', '' FROM icp_members` + suffix + ` ORDER BY tenant, user_id, position, id`,
	} {
		rows, err := db.Query(q)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			c := make([]string, 8)
			if err := rows.Scan(&c[0], &c[1], &c[2], &c[3], &c[4], &c[5], &c[6], &c[7]); err != nil {
				t.Fatal(err)
			}
			out = append(out, strings.Join(c, " | "))
		}
		if err := rows.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return strings.Join(out, "\n")
}

// A rebuild writes the rows the live writer writes for the same views,
// whatever the member ids hold: quotes, HTML characters, control
// characters, NUL, non-ASCII, U+2028, invalid UTF-8, an id listed twice.
func TestBuilderWritesWhatTheLiveWriterWrites(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	odd := [][]string{
		{"user_1", "user_2"},
		{`q"b\s`, "<&>"},
		{"tab\tnl\n\x01\x1f\x7f", "a\x00b"},
		{"ü日本🎉", "\u2028\u2029"},
		{"user_1", "user_1"},
		{"\xff bad"},
		{},
	}
	var created, replaced []projections.View
	for i, users := range odd {
		v := view(fmt.Sprintf("icp_%d", i), 1)
		v.Position = uint64(10 + i)
		v.UserIDs = users
		created = append(created, v)
		r := v
		r.Version = 2
		r.UserIDs = append([]string{"user_new"}, users[min(1, len(users)):]...)
		if i == 3 || i == 6 {
			r.Deleted, r.Doc, r.UserIDs = true, nil, nil
		}
		replaced = append(replaced, r)
	}
	live := filepath.Join(dir, "live.db")
	m := open(t, live, sqlitemodel.Options{})
	rebuilt := filepath.Join(dir, "rebuilt.db")
	b, err := sqlitemodel.OpenBuilder(ctx, rebuilt)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for _, c := range [][]projections.View{created[:4], created[4:]} {
		for _, v := range c {
			mustApply(t, m, v)
		}
		if err := b.Put(ctx, c, nil); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := tableRows(t, rebuilt, "_rebuild"), tableRows(t, live, ""); got != want {
		t.Fatalf("rebuilt rows after the creates:\n%s\nlive writer's rows:\n%s", got, want)
	}
	for _, v := range replaced {
		mustApply(t, m, v)
	}
	if err := b.Put(ctx, nil, replaced[:3]); err != nil {
		t.Fatal(err)
	}
	if err := b.Swap(ctx, func(ctx context.Context) error { return b.Put(ctx, nil, replaced[3:]) }); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	got, want := tableRows(t, rebuilt, ""), tableRows(t, live, "")
	if got != want {
		t.Fatalf("rebuilt rows after the updates:\n%s\nlive writer's rows:\n%s", got, want)
	}
	if n := strings.Count(want, "\n"); n < 2*len(odd) {
		t.Fatalf("only %d rows written", n+1)
	}
}
