package sqlite

// File faults: what can be wrong with an SQLite file found in the data
// directory, named here so that the adapters that open such files report it
// the same way and the service can tell the operator what to do, whatever
// the driver's own wording.

import (
	"errors"
	"fmt"

	driver "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

var (
	// ErrNotDatabase is wrapped by an open error when the file is not an
	// SQLite database (another kind of file, or a damaged header).
	ErrNotDatabase = errors.New("not an SQLite database")
	// ErrNewerSchema is wrapped by an open error when the file was written by
	// a newer release: its schema version is beyond the migrations this code
	// knows, and reading it could misread it.
	ErrNewerSchema = errors.New("written by a newer release")
)

// Classify returns err wrapped with ErrNotDatabase when the driver found that
// the file is not a database, and err unchanged otherwise (nil stays nil).
func Classify(err error) error {
	var se *driver.Error
	if errors.As(err, &se) && se.Code()&0xff == sqlite3.SQLITE_NOTADB {
		return fmt.Errorf("%w: %w", ErrNotDatabase, err)
	}
	return err
}

// SchemaError is the error for a file whose schema version is beyond the
// versions this code knows. It matches ErrNewerSchema.
type SchemaError struct {
	Have, Known int
}

func (e *SchemaError) Error() string {
	return fmt.Sprintf("schema version %d, newer than the %d this release knows", e.Have, e.Known)
}

// Is makes errors.Is(err, ErrNewerSchema) true.
func (e *SchemaError) Is(target error) bool { return target == ErrNewerSchema }

// NewerSchema is the error for a file at schema version have when this code
// knows only up to known.
func NewerSchema(have, known int) error { return &SchemaError{Have: have, Known: known} }
