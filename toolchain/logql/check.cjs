// Parses LogQL queries with Grafana's own grammar (@grafana/lezer-logql, Apache-2.0).
// stdin: a JSON list of queries; stdout: a JSON list, per query, of
// {ok, error_at, labels}: the first syntax error's offset (or null) and the
// label names its stream selectors use. NODE_PATH names the package's folder.
const { parser } = require("@grafana/lezer-logql");

const chunks = [];
process.stdin.on("data", (chunk) => chunks.push(chunk));
process.stdin.on("end", () => {
  const queries = JSON.parse(Buffer.concat(chunks).toString("utf8"));
  const results = queries.map((query) => {
    let errorAt = null;
    const labels = new Set();
    parser.parse(query).iterate({
      enter(node) {
        if (node.type.isError && errorAt === null) errorAt = node.from;
        if (node.name === "Matcher") {
          const identifier = node.node.getChild("Identifier");
          if (identifier) labels.add(query.slice(identifier.from, identifier.to));
        }
      },
    });
    return { ok: errorAt === null, error_at: errorAt, labels: [...labels].sort() };
  });
  process.stdout.write(JSON.stringify(results));
});
