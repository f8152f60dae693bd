// A charging station built on ocpp-rpc in strict mode: every message it
// sends or receives is validated against the OCPP 2.0.1 JSON schemas. The
// Go tests of package ocpp run it against gridveil's CSMS:
//
//   node cp.js ENDPOINT IDENTITY PASSWORD TOKENS
//
// TOKENS is a JSON array of OCPP idTokens ({idToken, type}), the tokens
// vehicles show the station one after the other. It boots, reports its
// connector, and for each token: authorize; if the CSMS refuses it, start
// a transaction with it anyway (as a station that starts on plug-in does),
// report the status the CSMS gives the token there, and end it
// (Deauthorized); if the CSMS accepts it: start, wait for the TxProfile, then
// report the energy register once per profile period (timestamps on the
// profile's clock, not the wall clock, so the run is deterministic and
// quick), the EV drawing the profile's limit except in the last charging
// period, where its battery tapers and it draws half, then stop. With
// CP_TLS_CA (the CSMS's CA), and optionally CP_TLS_CERT and CP_TLS_KEY (the
// station's client certificate, security profile 3; PASSWORD "-" then
// sends no basic auth), it connects over TLS (wss:). With CP_PROTOCOL=ocpp2.1
// it speaks OCPP 2.1 (strict, against ocpp-rpc's 2.1 schemas) and follows
// V2X periods: a CentralSetpoint period's setpoint, negative to discharge,
// which runs up the export register instead of the import one. Every event goes to
// stdout as one JSON line; a validation failure or a call error exits
// with status 1.
'use strict';
const { RPCClient, createValidator } = require('ocpp-rpc');

const [endpoint, identity, password, tokensJSON] = process.argv.slice(2);
const tokens = JSON.parse(tokensJSON);
const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');
const fail = (what, err) => { out({ event: 'error', what, error: String(err && err.stack || err) }); process.exit(1); };

const T0 = Date.parse('2025-01-15T19:00:00Z');
const iso = (ms) => new Date(ms).toISOString();

async function main() {
  const fs = require('fs');
  const wsOpts = {};
  if (process.env.CP_TLS_CA) wsOpts.ca = fs.readFileSync(process.env.CP_TLS_CA);
  if (process.env.CP_TLS_CERT) {
    wsOpts.cert = fs.readFileSync(process.env.CP_TLS_CERT);
    wsOpts.key = fs.readFileSync(process.env.CP_TLS_KEY);
  }
  // ocpp-rpc 2.2.1 ships the OCA's 2.1 schemas with ids urn:ACTIONRequest /
  // urn:ACTIONResponse but looks them up as urn:ACTION.req / urn:ACTION.conf,
  // so its built-in 2.1 strict mode finds none: the same schemas, with the
  // ids it looks up, make it validate every 2.1 message.
  const v21 = require('ocpp-rpc/lib/schemas/ocpp2_1.json').map((sch) => ({
    ...sch, $id: sch.$id.replace(/Request$/, '.req').replace(/Response$/, '.conf'),
  }));
  const cli = new RPCClient({
    endpoint, identity, password: password === '-' ? undefined : password, wsOpts,
    strictModeValidators: [createValidator('ocpp2.1', v21)],
    protocols: [process.env.CP_PROTOCOL || 'ocpp2.0.1'], strictMode: true, reconnect: false, callTimeoutMs: 20000,
  });
  cli.on('strictValidationFailure', (e) => fail('strictValidationFailure', e.error));
  const profiles = [];
  let waiting = null;
  cli.handle('SetChargingProfile', ({ params }) => {
    out({ event: 'SetChargingProfile', params });
    profiles.push(params);
    if (waiting) { waiting(); waiting = null; }
    return { status: 'Accepted' };
  });
  cli.handle(({ method }) => { out({ event: 'unhandled', method }); throw new Error('not implemented'); });
  await cli.connect();
  out({ event: 'connected', protocol: cli.protocol });

  const boot = await cli.call('BootNotification', { reason: 'PowerUp', chargingStation: { model: 'cp-sim', vendorName: 'gridveil-test' } });
  out({ event: 'BootNotification', result: boot });
  await cli.call('StatusNotification', { timestamp: iso(T0), connectorStatus: 'Available', evseId: 1, connectorId: 1 });
  await cli.call('Heartbeat', {});

  let register = 0; // Wh, the EVSE's energy register (import)
  let exported = 0; // Wh, its export register (OCPP 2.1 V2X only)
  const v2x = cli.protocol === 'ocpp2.1';
  let clock = T0;
  for (let n = 0; n < tokens.length; n++) {
    const token = tokens[n];
    const auth = await cli.call('Authorize', { idToken: token });
    out({ event: 'Authorize', result: auth });
    const txId = `${identity}-tx-${n}`;
    let seqNo = 0;
    const energy = (ms, context) => {
      const sv = [{ value: Math.round(register * 10) / 10, context, measurand: 'Energy.Active.Import.Register', unitOfMeasure: { unit: 'Wh' } }];
      if (v2x) sv.push({ value: Math.round(exported * 10) / 10, context, measurand: 'Energy.Active.Export.Register', unitOfMeasure: { unit: 'Wh' } });
      return [{ timestamp: iso(ms), sampledValue: sv }];
    };
    if (auth.idTokenInfo.status !== 'Accepted') {
      const started = await cli.call('TransactionEvent', {
        eventType: 'Started', timestamp: iso(clock), triggerReason: 'CablePluggedIn', seqNo: seqNo++,
        transactionInfo: { transactionId: txId, chargingState: 'EVConnected' }, evse: { id: 1, connectorId: 1 }, idToken: token,
        meterValue: energy(clock, 'Transaction.Begin'),
      });
      await cli.call('TransactionEvent', {
        eventType: 'Ended', timestamp: iso(clock), triggerReason: 'Deauthorized', seqNo: seqNo++,
        transactionInfo: { transactionId: txId, stoppedReason: 'DeAuthorized' }, meterValue: energy(clock, 'Transaction.End'),
      });
      out({ event: 'refused', transactionId: txId, authorize: auth.idTokenInfo.status, started: started.idTokenInfo ? started.idTokenInfo.status : '' });
      continue;
    }
    let timer;
    const got = new Promise((resolve, reject) => {
      waiting = resolve;
      timer = setTimeout(() => reject(new Error('no SetChargingProfile within 20 s of TransactionEvent Started')), 20000);
    });
    const have = profiles.length;
    await cli.call('TransactionEvent', {
      eventType: 'Started', timestamp: iso(clock), triggerReason: 'Authorized', seqNo: seqNo++,
      transactionInfo: { transactionId: txId, chargingState: 'Charging' }, evse: { id: 1, connectorId: 1 }, idToken: token,
      meterValue: energy(clock, 'Transaction.Begin'),
    });
    if (profiles.length === have) await got;
    clearTimeout(timer);
    const p = profiles[profiles.length - 1].chargingProfile;
    const sch = p.chargingSchedule[0];
    const periods = sch.chargingSchedulePeriod;
    // The power the EV takes in a period: the limit, or in a V2X
    // CentralSetpoint period the setpoint (negative: it discharges).
    const power = (q) => (q.operationMode === 'CentralSetpoint' ? q.setpoint : q.limit);
    let last = -1;
    periods.forEach((q, k) => { if (power(q) > 0) last = k; });
    const start = clock;
    const slotWh = [];
    for (let k = 0; k < periods.length; k++) {
      const end = k + 1 < periods.length ? periods[k + 1].startPeriod : sch.duration;
      const w = k === last ? power(periods[k]) / 2 : power(periods[k]);
      const wh = w * (end - periods[k].startPeriod) / 3600;
      slotWh.push(wh);
      if (wh >= 0) register += wh; else exported -= wh;
      const ts = start + end * 1000;
      await cli.call('TransactionEvent', {
        eventType: 'Updated', timestamp: iso(ts), triggerReason: 'MeterValuePeriodic', seqNo: seqNo++,
        transactionInfo: { transactionId: txId, chargingState: w !== 0 ? 'Charging' : 'SuspendedEVSE' },
        meterValue: energy(ts, 'Sample.Periodic'),
      });
    }
    clock = start + sch.duration * 1000;
    await cli.call('MeterValues', { evseId: 1, meterValue: energy(clock, 'Sample.Clock') });
    await cli.call('TransactionEvent', {
      eventType: 'Ended', timestamp: iso(clock), triggerReason: 'EVCommunicationLost', seqNo: seqNo++,
      transactionInfo: { transactionId: txId, stoppedReason: 'EVDisconnected' }, meterValue: energy(clock, 'Transaction.End'),
    });
    out({ event: 'transaction', transactionId: txId, profileId: p.id, register_wh: Math.round(register * 10) / 10, export_wh: Math.round(exported * 10) / 10, slot_wh: slotWh.map((x) => Math.round(x * 10) / 10) });
  }
  await cli.close({ code: 1000 });
  out({ event: 'done' });
}

main().catch((e) => fail('main', e));
