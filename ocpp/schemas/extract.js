// Extracts the OCPP 2.0.1 JSON schemas gridveil's CSMS validates against
// from the ocpp-rpc package (lib/schemas/ocpp2_0_1.json, the Open Charge
// Alliance's schemas in one array), one file per message, unchanged.
// Run from ocpp/schemas: node extract.js PATH/TO/ocpp-rpc/lib/schemas/ocpp2_0_1.json
const fs = require('fs');
const actions = ['Authorize', 'BootNotification', 'ClearChargingProfile', 'GetChargingProfiles',
  'GetCompositeSchedule', 'Heartbeat', 'MeterValues', 'NotifyEVChargingNeeds', 'ReportChargingProfiles',
  'RequestStartTransaction', 'RequestStopTransaction', 'SetChargingProfile', 'StatusNotification',
  'TransactionEvent'];
const all = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
for (const a of actions) {
  for (const kind of ['req', 'conf']) {
    const s = all.find(x => x.$id === `urn:${a}.${kind}`);
    if (!s) throw new Error(`no schema urn:${a}.${kind}`);
    fs.writeFileSync(`${a}.${kind}.json`, JSON.stringify(s, null, 2) + '\n');
  }
}
