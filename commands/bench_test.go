package commands

import "testing"

const benchBody = `{"name":"DACH Tech Leaders","description":"Technology leaders in German-speaking regions",
 "leadProviderCriteria":[{"provider":"baseProvider","type":"person",
   "filters":{"job_title":["CTO","VP Engineering"],"location":{"country":["Germany","Austria","Switzerland"]},"company.employee_size.min":50}}],
 "customFilterCriteria":[{"type":"maxPeoplePerCompany","value":2}],
 "crmFilters":{"provider":"bullhorn","textSearch":"Marketing*","filters":[{"path":"status","mode":"eq","value":"active","exclude":false}]},
 "userIds":["user_abc123"],"leadsPerList":20,"activeUntil":null}`

func BenchmarkParseCreate(b *testing.B) {
	body := []byte(benchBody)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseCreate(body, "user_me"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCreateHash(b *testing.B) {
	cmd, err := ParseCreate([]byte(benchBody), "user_me")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = HashCreate(cmd)
	}
}
