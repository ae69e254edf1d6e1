// fly-admin (supabase's TypeScript client for the Machines API) takes an app and a machine
// through their life against the URL given as the first argument (`flyk local serve`).
// Run by tests/local/test_clients.py; prints one JSON line, {"steps": [...]}, or fails.
"use strict";

const assert = require("node:assert/strict");
const Client = require("fly-admin/dist/client").default;

const [apiUrl, appName] = process.argv.slice(2);
const fly = new Client("fm2_unused_by_the_local_backend", { apiUrl });
const app = { app_name: appName };
const steps = [];

async function step(name, call) {
  try {
    const result = await call();
    steps.push(name);
    return result;
  } catch (error) {
    throw new Error(`${name}: ${error.message}`);
  }
}

async function refused(name, call, status) {
  try {
    await call();
  } catch (error) {
    assert.match(error.message, new RegExp(`^${status}: \\{"error":`), name);
    steps.push(`${name} refused ${status}`);
    return;
  }
  throw new Error(`${name}: not refused`);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function main() {
  // the app: created with the field name the API docs showed, `app_name`
  await step("createApp", () => fly.App.createApp({ org_slug: "personal", app_name: appName }));
  const shown = await step("getApp", () => fly.App.getApp(appName));
  assert.equal(shown.name, appName);
  assert.equal(shown.organization.slug, "personal");
  const listed = await step("listApps", () => fly.App.listApps("personal"));
  assert.ok(listed.apps.some((a) => a.name === appName));

  // a volume
  const volume = await step("createVolume", () =>
    fly.Volume.createVolume({ ...app, name: "data", region: "iad", size_gb: 1 }),
  );
  const volumeRef = { ...app, volume_id: volume.id };
  assert.equal((await step("getVolume", () => fly.Volume.getVolume(volumeRef))).id, volume.id);
  const volumes = await step("listVolumes", () => fly.Volume.listVolumes(appName));
  assert.deepEqual(volumes.map((v) => v.id), [volume.id]);
  const extended = await step("extendVolume", () =>
    fly.Volume.extendVolume({ ...volumeRef, size_gb: 2 }),
  );
  assert.equal(extended.volume.size_gb, 2);
  assert.ok(Array.isArray(await step("listSnapshots", () => fly.Volume.listSnapshots(volumeRef))));

  // a machine on it: launch, wait, look at it
  const config = {
    image: "nginx:1.27",
    guest: { cpu_kind: "shared", cpus: 1, memory_mb: 256 },
    env: { MODE: "demo" },
    mounts: [{ volume: volume.id, path: "/data" }],
    services: [{ protocol: "tcp", internal_port: 8080, ports: [{ port: 443, handlers: ["tls", "http"] }] }],
  };
  const machine = await step("createMachine", () =>
    fly.Machine.createMachine({ ...app, name: "web", region: "iad", config }),
  );
  const ref = { ...app, machine_id: machine.id };
  const started = await step("waitMachine started", () =>
    fly.Machine.waitMachine({ ...ref, state: "started", timeout: "30s" }),
  );
  assert.equal(started.ok, true);
  assert.equal((await step("getMachine", () => fly.Machine.getMachine(ref))).state, "started");
  const machines = await step("listMachines", () => fly.Machine.listMachines(appName));
  assert.deepEqual(machines.map((m) => m.id), [machine.id]);
  assert.ok(Array.isArray(await step("listProcesses", () => fly.Machine.listProcesses(ref))));

  // stop (fly-admin sends {"signal": "SIGTERM"}), wait for that version to stop, start again
  await step("stopMachine", () => fly.Machine.stopMachine(ref));
  await step("waitMachine stopped", () =>
    fly.Machine.waitMachine({ ...ref, state: "stopped", instance_id: machine.instance_id, timeout: "30s" }),
  );
  await step("startMachine", () => fly.Machine.startMachine(ref));
  await step("waitMachine started again", () =>
    fly.Machine.waitMachine({ ...ref, state: "started", timeout: "30s" }),
  );

  // update: a new version
  const updated = await step("updateMachine", () =>
    fly.Machine.updateMachine({ ...ref, config: { ...config, env: { MODE: "updated" } } }),
  );
  assert.notEqual(updated.instance_id, machine.instance_id);
  assert.equal(updated.config.env.MODE, "updated");
  await step("waitMachine updated", () =>
    fly.Machine.waitMachine({ ...ref, state: "started", instance_id: updated.instance_id, timeout: "30s" }),
  );
  const versions = await step("listVersions", () => fly.Machine.listVersions(ref));
  assert.equal(versions.length, 2);

  await step("restartMachine", () => fly.Machine.restartMachine(ref));
  await step("signalMachine", () => fly.Machine.signalMachine({ ...ref, signal: "SIGUSR1" }));
  await step("cordonMachine", () => fly.Machine.cordonMachine(ref));
  await step("uncordonMachine", () => fly.Machine.uncordonMachine(ref));

  // a lease: held, seen, and in the way of a destroy without its nonce (fly-admin sends none)
  const lease = await step("acquireLease", () =>
    fly.Machine.acquireLease({ ...ref, ttl: 1, description: "fly-admin" }),
  );
  const held = await step("getLease", () => fly.Machine.getLease(ref));
  assert.equal(held.nonce, lease.nonce);
  assert.equal(held.description, "fly-admin");
  await refused("deleteMachine while leased", () => fly.Machine.deleteMachine({ ...ref, force: true }), 409);
  await sleep(1500); // the lease's TTL runs out

  const events = await step("listEvents", () => fly.Machine.listEvents(ref));
  const types = new Set(events.map((e) => e.type));
  for (const type of ["launch", "start", "stop", "exit", "update", "restart", "cordon", "uncordon"]) {
    assert.ok(types.has(type), `no ${type} event in ${[...types]}`);
  }

  // destroy (fly-admin's force is ?kill=true), then the volume and the app
  await step("deleteMachine", () => fly.Machine.deleteMachine({ ...ref, force: true }));
  await step("waitMachine destroyed", () =>
    fly.Machine.waitMachine({ ...ref, state: "destroyed", timeout: "30s" }),
  );
  await step("deleteVolume", () => fly.Volume.deleteVolume(volumeRef));
  await step("deleteApp", () => fly.App.deleteApp(appName));
  await refused("getApp after deleteApp", () => fly.App.getApp(appName), 404);

  console.log(JSON.stringify({ steps }));
}

main().catch((error) => {
  console.error(error.stack || String(error));
  process.exit(1);
});
