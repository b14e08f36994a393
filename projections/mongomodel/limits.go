package mongomodel

// maxBSONDocument is MongoDB's largest document (16 MiB).
const maxBSONDocument = 16 << 20

// MaxDocBytes is MongoDB's largest document less room for the document's
// other fields: the ICP's JSON is one binary field of a document that also
// holds its id, tenant, creator, version, position and members
// (TestTheLargestDocFitsInOneBSONDocument adds them up at their largest).
func (m *Model) MaxDocBytes() int { return maxBSONDocument - 64<<10 }
