// Drive Julia Chips from Node.js: provision a chip, read the actor's answer, follow its
// events. Commands are stored in JetStream (CHIP_CMDS) and answered on the inbox named in
// the `Julia-Reply-To` header (docs/contract.md, "Replies"); the answer comes once the
// chip's events are stored.
//
//   cd examples/node && npm install && NATS_URL=nats://127.0.0.1:4222 node client.mjs
import { randomUUID } from "node:crypto";
import { connect, createInbox, headers } from "@nats-io/transport-node";
import { jetstream } from "@nats-io/jetstream";

const servers = (process.env.NATS_URL ?? "nats://127.0.0.1:4222").split(",");
const nc = await connect({ servers });
const js = jetstream(nc);

const chipId = randomUUID();
const events = nc.subscribe(`chip.evt.${chipId}`, { max: 1 }); // live, from now on
const inbox = createInbox();
const answers = nc.subscribe(inbox, { max: 1 });

const command = { type: "Provision", command_id: randomUUID(), ddd: 11 };
const h = headers();
h.set("Julia-Reply-To", inbox);
await js.publish(`chip.cmd.${chipId}`, JSON.stringify(command), {
  headers: h,
  msgID: command.command_id, // sent twice, stored once
});

for await (const m of answers) {
  const reply = m.json();
  console.log(`provision ${chipId}: ok=${reply.ok} state=${reply.state}`);
  if (!reply.ok) process.exitCode = 1;
}
for await (const m of events) {
  console.log(`event: ${m.json().type}`);
}
await nc.close();
