package rebuild

import "testing"

// SmallSteps makes the replay's chunks, pages and batches tiny until the
// test ends, so that small histories go through every path: many chunks,
// aging, compaction, several batches in flight.
func SmallSteps(t *testing.T) {
	page, chunk, put, age, compact := readPage, readChunk, putViews, ageChunks, compactEvery
	readPage, readChunk, putViews, ageChunks, compactEvery = 7, 16, 5, 2, 3
	t.Cleanup(func() { readPage, readChunk, putViews, ageChunks, compactEvery = page, chunk, put, age, compact })
}
