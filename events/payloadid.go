package events

// PayloadICPID returns the id of the ICP a decoded payload (one of the
// ICP*V1 payload types) names, "" for any other value. Every reader of
// events checks it against the stream the event was recorded in
// (Recorded.ICPID): a payload that names another ICP is corrupt, and folding
// it would write one ICP's data under another's id.
func PayloadICPID(payload any) string {
	switch p := payload.(type) {
	case ICPCreatedV1:
		return p.ICP.ID
	case ICPUpdatedV1:
		return p.ID
	case ICPDeletedV1:
		return p.ID
	}
	return ""
}
