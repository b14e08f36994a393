package rebuild

import "testing"

// SmallSteps makes the replay's chunks and batches tiny until the
// test ends, so that small histories go through every path: many chunks,
// aging, compaction, several batches in flight.
func SmallSteps(t *testing.T) {
	chunk, put, age, compact := readChunk, putViews, ageChunks, compactEvery
	readChunk, putViews, ageChunks, compactEvery = 7, 5, 2, 3
	t.Cleanup(func() { readChunk, putViews, ageChunks, compactEvery = chunk, put, age, compact })
}

// SmallBrokenCap makes the folder remember at most n broken ICPs until the
// test ends.
func SmallBrokenCap(t *testing.T, n int) {
	old := maxBroken
	maxBroken = n
	t.Cleanup(func() { maxBroken = old })
}
