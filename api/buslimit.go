package api

// bodyLimit is the largest request body accepted: Config.MaxBodyBytes, and
// never more than the bus could carry as an event's data (the command
// handler's MaxEventData, once the bus's largest message is known). A body
// above it answers 413 before it is read whole. The handler still checks the
// event exactly as encoded (commands.TooLargeError, 413 too), since an event
// adds to its body's content what the server fills in.
func (a *api) bodyLimit() int64 {
	if n := a.cmds.MaxEventData(); n > 0 && n < a.cfg.MaxBodyBytes {
		return n
	}
	return a.cfg.MaxBodyBytes
}
