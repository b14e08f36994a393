package sqlitemodel

// sqliteMaxLength is the longest string, BLOB or row SQLite stores
// (SQLITE_MAX_LENGTH as the driver is built: SQLite's default).
const sqliteMaxLength = 1_000_000_000

// MaxDocBytes is SQLite's longest row less room for the row's other columns
// (the members' JSON array among them), far more than any other limit of the
// service lets an ICP grow to.
func (m *Model) MaxDocBytes() int { return sqliteMaxLength - 1<<20 }
