package events

// RecentReader is implemented by event stores that keep the events of this
// process's latest commits in memory (the SQLite store does, for its
// followers). A reader that checks what it is told against the store, such
// as the projector checking bus messages, asks it first and reads the store
// only for what it does not hold.
type RecentReader interface {
	// ReadRecent returns, when the store's memory holds the event at
	// position after+1, up to limit events with Position > after in global
	// order, and true; otherwise nil and false, and the caller reads with
	// ReadAll. The events are committed events, exactly as ReadAll returns
	// them, with no hole between them. Unlike ReadAll's, the result may stop
	// short of the store's last event although limit was not reached:
	// another process's later commits are not in this process's memory.
	// It never blocks on the store's files.
	ReadRecent(after uint64, limit int) ([]Recorded, bool)
}
