package mongomodel

import (
	"fmt"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/icpservice/icp/projections"
)

// TestTheLargestDocFitsInOneBSONDocument: a view whose doc is MaxDocBytes
// long, with every other field at its largest, is stored as a document
// MongoDB accepts (at most 16 MiB of BSON).
func TestTheLargestDocFitsInOneBSONDocument(t *testing.T) {
	members := make([]string, 100)
	for i := range members {
		members[i] = fmt.Sprintf("%03d", i) + strings.Repeat("u", 125)
	}
	v := projections.View{
		ID: strings.Repeat("i", 256), Tenant: strings.Repeat("t", 256), CreatedBy: strings.Repeat("c", 128),
		Version: 1 << 62, Position: 1 << 62, UserIDs: members,
		Doc: make([]byte, (&Model{}).MaxDocBytes()),
	}
	b, err := bson.Marshal(recordOf(v))
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > maxBSONDocument {
		t.Fatalf("the largest view takes %d bytes of BSON; MongoDB stores at most %d", len(b), maxBSONDocument)
	}
	if room := maxBSONDocument - len(b); room > 64<<10 {
		t.Errorf("%d bytes of BSON left unused: MaxDocBytes could be larger", room)
	}
}
