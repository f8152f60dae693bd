// Extracts the OCPP 2.1 JSON schemas gridveil's CSMS validates against on
// subprotocol ocpp2.1 from the ocpp-rpc package (lib/schemas/ocpp2_1.json,
// the Open Charge Alliance's 2.1 schemas in one array, ids
// urn:ACTIONRequest / urn:ACTIONResponse), one file per message, unchanged,
// named ACTION.req.json / ACTION.conf.json as the 2.0.1 files are.
// Run from ocpp/schemas: node extract21.js PATH/TO/ocpp-rpc/lib/schemas/ocpp2_1.json
const fs = require('fs');
const actions = ['Authorize', 'BootNotification', 'ClearChargingProfile', 'GetChargingProfiles',
  'GetCompositeSchedule', 'Heartbeat', 'MeterValues', 'NotifyEVChargingNeeds', 'ReportChargingProfiles',
  'RequestStartTransaction', 'RequestStopTransaction', 'SetChargingProfile', 'StatusNotification',
  'TransactionEvent'];
const all = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
for (const a of actions) {
  for (const [kind, suffix] of [['req', 'Request'], ['conf', 'Response']]) {
    const s = all.find(x => x.$id === `urn:${a}${suffix}`);
    if (!s) throw new Error(`no schema urn:${a}${suffix}`);
    fs.writeFileSync(`v2.1/${a}.${kind}.json`, JSON.stringify(s, null, 2) + '\n');
  }
}
