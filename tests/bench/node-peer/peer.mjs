// The plain Node.js peer of the ingest benchmark: what a team would write from the reference in an
// afternoon. node:http and a `pg` Pool of 16; the reference's DDL (events with JSONB data and its
// three indexes, and the students table its foreign key names); per request one transaction: the
// students upserted with one INSERT … SELECT unnest … ON CONFLICT … RETURNING, then every event with
// one INSERT … SELECT FROM unnest. No dedup, no summaries, no ordering guarantee.
//
// Usage: DATABASE_URL=postgres://… node peer.mjs   (listens on 127.0.0.1, a free port; prints
// "listening on http://127.0.0.1:PORT" once ready).
import http from "node:http";
import pg from "pg";

const pool = new pg.Pool({ connectionString: process.env.DATABASE_URL, max: 16 });

await pool.query(`
  CREATE TABLE IF NOT EXISTS students (
    student_id SERIAL PRIMARY KEY,
    email TEXT UNIQUE NOT NULL,
    name TEXT
  );
  CREATE TABLE IF NOT EXISTS events (
    event_id SERIAL PRIMARY KEY,
    student_id INTEGER REFERENCES students(student_id),
    session_token TEXT NOT NULL,
    event_type VARCHAR(50) NOT NULL,
    event_data JSONB NOT NULL,
    created_at TIMESTAMP DEFAULT NOW()
  );
  CREATE INDEX IF NOT EXISTS idx_events_session ON events(session_token);
  CREATE INDEX IF NOT EXISTS idx_events_type ON events(event_type);
  CREATE INDEX IF NOT EXISTS idx_events_created ON events(created_at DESC);
`);

function reply(res, status, body) {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(body));
}

async function store(events) {
  const client = await pool.connect();
  try {
    await client.query("BEGIN");
    const emails = [...new Set(events.map((e) => e.studentEmail).filter((e) => typeof e === "string"))];
    const ids = new Map();
    if (emails.length > 0) {
      const students = await client.query(
        `INSERT INTO students (email) SELECT unnest($1::text[])
         ON CONFLICT (email) DO UPDATE SET email = excluded.email
         RETURNING student_id, email`,
        [emails],
      );
      for (const row of students.rows) ids.set(row.email, row.student_id);
    }
    await client.query(
      `INSERT INTO events (student_id, session_token, event_type, event_data)
       SELECT * FROM unnest($1::int[], $2::text[], $3::text[], $4::jsonb[])`,
      [
        events.map((e) => ids.get(e.studentEmail) ?? null),
        events.map((e) => e.sessionToken),
        events.map((e) => e.eventType),
        events.map((e) => JSON.stringify(e.eventData ?? {})),
      ],
    );
    await client.query("COMMIT");
  } catch (error) {
    await client.query("ROLLBACK").catch(() => {});
    throw error;
  } finally {
    client.release();
  }
}

const server = http.createServer((req, res) => {
  if (req.method !== "POST" || req.url !== "/api/session-log") return reply(res, 404, { success: false, error: "not found" });
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", async () => {
    let body;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
    } catch {
      return reply(res, 400, { success: false, error: "invalid JSON" });
    }
    const events = Array.isArray(body.events) ? body.events : [body];
    if (!events.every((e) => e && typeof e.sessionToken === "string" && typeof e.eventType === "string")) {
      return reply(res, 400, { success: false, error: "sessionToken and eventType are required" });
    }
    try {
      await store(events);
      reply(res, 200, { success: true, logged: events.length });
    } catch (error) {
      reply(res, 500, { success: false, error: String(error.message ?? error) });
    }
  });
});
server.keepAliveTimeout = 60_000;
server.listen(0, "127.0.0.1", () => console.log(`listening on http://127.0.0.1:${server.address().port}`));
