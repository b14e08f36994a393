// Run by the mongo image on the first start of an empty data volume
// (docker-compose.yml mounts it in /docker-entrypoint-initdb.d), as the root
// user: creates the service's own user, icp, which may read and write the
// icp database only. Its password comes from the container's environment.
const password = process.env.MONGO_ICP_PASSWORD;
if (!password) {
  throw new Error("MONGO_ICP_PASSWORD is not set");
}
db.getSiblingDB("icp").createUser({
  user: "icp",
  pwd: password,
  roles: [{ role: "readWrite", db: "icp" }],
});
