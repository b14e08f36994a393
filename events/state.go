package events

import "github.com/icpservice/icp/domain"

// EvolveRecorded decodes r and folds it onto s (see domain.Evolve).
func EvolveRecorded(s *domain.State, r Recorded) (*domain.State, error) {
	p, err := DecodeRecorded(r)
	if err != nil {
		return nil, err
	}
	return domain.Evolve(s, p, r.Version, r.Position)
}

// Fold folds a whole stream, oldest first. It returns nil for no events.
func Fold(stream []Recorded) (*domain.State, error) {
	var s *domain.State
	for _, r := range stream {
		n, err := EvolveRecorded(s, r)
		if err != nil {
			return nil, err
		}
		s = n
	}
	return s, nil
}
