// Package domain is the ICP aggregate: the Ideal Customer Profile and its
// state, the payloads of the events that change it, the fold of those events
// into the state (Evolve), the decisions that turn a command and a state into
// an event (DecideCreate, DecideUpdate, DecideDelete), and the one access
// rule (Authorize, InList) over the domain's own Actor.
//
// It is the lowest layer of the service: it imports nothing of this module
// and does no I/O. How events are stored, encoded on the wire and carried
// on the bus is package events'; how a caller proves who they are is
// api/auth's, which the API maps to an Actor.
package domain
