// gridveil dashboard: reads the server's /api/v1 JSON (docs/DASHBOARD.md)
// and draws it with Apache ECharts. One view is shown at a time (the URL's
// #hash); a view's charts are drawn when it is first shown, so no chart is
// laid out in a hidden element. The live coordination arrives by
// server-sent events on /api/v1/events; EventSource reconnects by itself
// and the server then sends the whole state again.
'use strict';

const gv = {
  data: {},        // view name -> the API's answer
  charts: {},      // element id -> echarts instance
  rendered: {},    // view name -> true once drawn
  live: null,      // the live state (LiveState of the API)
};
window.gv = gv;

const $ = (id) => document.getElementById(id);

// fmt shows a number to 6 significant digits (the API has full precision).
function fmt(x, digits) {
  if (x === null || x === undefined) return '-';
  if (typeof x !== 'number') return String(x);
  if (!isFinite(x)) return String(x);
  if (Number.isInteger(x) && Math.abs(x) < 1e15) return String(x);
  return Number(x.toPrecision(digits || 6)).toString();
}

function setText(id, v, digits) {
  const el = $(id);
  if (el) el.textContent = fmt(v, digits);
}

function clear(el) { while (el.firstChild) el.removeChild(el.firstChild); }

function row(tbody, cells, header) {
  const tr = document.createElement('tr');
  cells.forEach((c, i) => {
    const td = document.createElement(header && i === 0 ? 'th' : 'td');
    td.textContent = fmt(c);
    tr.appendChild(td);
  });
  tbody.appendChild(tr);
  return tr;
}

function option(sel, value, text) {
  const o = document.createElement('option');
  o.value = value;
  o.textContent = text === undefined ? value : text;
  sel.appendChild(o);
}

function showAbsent(view, absent) {
  const ul = document.querySelector('#view-' + view + ' .absent');
  if (!ul) return;
  clear(ul);
  (absent || []).forEach((a) => {
    const li = document.createElement('li');
    li.textContent = a;
    ul.appendChild(li);
  });
}

// chart draws opt in element id. merge keeps the chart's state and lets
// ECharts update only what changed: the live charts, redrawn at every
// event, use it (their series keep their names within a day).
function chart(id, opt, merge) {
  let c = gv.charts[id];
  if (!c) {
    c = echarts.init($(id), null, { renderer: 'canvas' });
    gv.charts[id] = c;
  }
  c.setOption(Object.assign({ animation: false, tooltip: { trigger: 'axis' }, legend: { top: 0 }, grid: { top: 40, left: 70, right: 40, bottom: 40 } }, opt), !merge);
  return c;
}

function slotLabels(n, start, dt) {
  const out = [];
  let m0 = 0;
  if (start && /^\d\d:\d\d$/.test(start)) m0 = parseInt(start.slice(0, 2), 10) * 60 + parseInt(start.slice(3), 10);
  for (let t = 0; t < n; t++) {
    if (!dt) { out.push(String(t)); continue; }
    const m = Math.round(m0 + t * dt * 60) % 1440;
    out.push(String(Math.floor(m / 60)).padStart(2, '0') + ':' + String(m % 60).padStart(2, '0'));
  }
  return out;
}

async function getJSON(path) {
  const r = await fetch(path, { credentials: 'same-origin' });
  const body = await r.json();
  if (!r.ok) throw new Error(body.error || (path + ': HTTP ' + r.status));
  return body;
}

// ---- views ----

function renderOverview(d) {
  $('run-dir').textContent = d.dir || 'none (no --run)';
  const tb = document.querySelector('#run-files tbody');
  clear(tb);
  d.files.forEach((f) => {
    const state = f.error ? 'unusable: ' + f.error : (f.present ? 'present' : 'absent');
    const tr = row(tb, [f.name, state, f.schema || '']);
    tr.dataset.file = f.name;
    tr.dataset.state = f.error ? 'error' : (f.present ? 'present' : 'absent');
  });
}

function voltColor(v, vmin) {
  if (v === null || v === undefined) return '#9aa4ae';
  const m = v - vmin;
  if (m < 0) return '#c0392b';
  if (m < 0.005) return '#e67e22';
  if (m < 0.02) return '#c9b400';
  return '#2f8f46';
}

function renderFeeder(d) {
  showAbsent('feeder', d.absent);
  if (!d.feeders || !d.feeders.length) return;
  setText('feeder-vmin', d.vmin_pu);
  const sel = $('feeder-select');
  if (!sel.options.length) {
    d.feeders.forEach((f, i) => option(sel, i, f.name));
    // Start with the feeder of the region's lowest voltage.
    let lo = 0;
    d.feeders.forEach((f, i) => { if (f.min_voltage_pu !== null && (d.feeders[lo].min_voltage_pu === null || f.min_voltage_pu < d.feeders[lo].min_voltage_pu)) lo = i; });
    sel.value = String(lo);
    sel.addEventListener('change', () => drawTree(d, +sel.value));
  }
  drawTree(d, +sel.value);
  chart('chart-feeder-region', {
    title: { text: 'Lowest voltage of each feeder', left: 'center', top: 0, textStyle: { fontSize: 13 } },
    legend: { show: false },
    xAxis: { type: 'category', data: d.feeders.map((f) => f.name) },
    yAxis: { type: 'value', name: 'pu', min: Math.floor((Math.min(d.vmin_pu, ...d.feeders.map((f) => f.min_voltage_pu).filter((v) => v !== null)) - 0.01) * 100) / 100 },
    series: [{
      name: 'lowest voltage', type: 'bar',
      data: d.feeders.map((f) => ({ value: f.min_voltage_pu, itemStyle: { color: voltColor(f.min_voltage_pu, d.vmin_pu) } })),
      markLine: { symbol: 'none', data: [{ yAxis: d.vmin_pu, name: 'vmin' }], label: { formatter: 'vmin' } },
    }],
  }).on('click', (p) => { sel.value = String(p.dataIndex); drawTree(d, p.dataIndex); });
}

function drawTree(d, i) {
  const f = d.feeders[i];
  setText('feeder-min-v', f.min_voltage_pu);
  $('feeder-min-at').textContent = f.min_bus ? f.min_bus + ' slot ' + f.min_slot : '-';
  setText('feeder-binding', f.binding_bus_slots);
  setText('feeder-violations', f.violations);
  const nodes = {};
  let root = null;
  f.buses.forEach((b) => {
    nodes[b.name] = {
      name: b.name,
      value: b.min_voltage_pu,
      bus: b,
      symbol: b.binding_slots > 0 ? 'diamond' : 'circle',
      symbolSize: b.binding_slots > 0 ? 18 : 12,
      itemStyle: { color: voltColor(b.min_voltage_pu, d.vmin_pu), borderColor: '#1d2733' },
      label: { formatter: b.name + (b.min_voltage_pu !== null ? ' ' + fmt(b.min_voltage_pu, 4) : '') },
      children: [],
    };
  });
  f.buses.forEach((b) => {
    if (b.parent === '' || !nodes[b.parent]) root = root || nodes[b.name];
    else nodes[b.parent].children.push(nodes[b.name]);
  });
  chart('chart-feeder-tree', {
    legend: { show: false },
    tooltip: {
      trigger: 'item',
      formatter: (p) => {
        const b = p.data.bus;
        return b.name + (b.slack ? ' (substation)' : '') + '<br>lowest ' + fmt(b.min_voltage_pu) + ' pu' + (b.min_slot >= 0 ? ' (slot ' + b.min_slot + ')' : '') +
          '<br>binding slots ' + b.binding_slots + ', below vmin ' + b.slots_below_vmin + '<br>EVs ' + b.evs + ', peak baseline ' + fmt(b.peak_baseline_kw, 4) + ' kW';
      },
    },
    series: [{ type: 'tree', data: [root], orient: 'TB', top: 30, bottom: 60, left: 40, right: 40, expandAndCollapse: false, initialTreeDepth: -1,
      label: { position: 'right', distance: 6, fontSize: 11 }, lineStyle: { color: '#9aa4ae' } }],
  });
}

function renderCoordination(d) {
  showAbsent('coordination', d.absent);
  if (!d.baseline_kw) return;
  setText('coord-scenario', d.scenario + ' seed ' + d.seed);
  setText('coord-privacy', d.privacy);
  setText('coord-iterations', d.iterations);
  setText('coord-objective', d.objective);
  setText('coord-gap', d.relative_gap);
  setText('coord-converged', String(d.converged));
  setText('coord-min-v', d.min_voltage_pu);
  setText('coord-min-at', d.min_voltage_at);
  setText('coord-violations', d.violations);
  const x = slotLabels(d.baseline_kw.length, d.start, d.dt_hours);
  const series = [
    { name: 'baseline', type: 'line', data: d.baseline_kw, showSymbol: false },
    { name: 'with EVs (true grid)', type: 'line', data: d.aggregate_kw, showSymbol: false },
  ];
  if (d.so_view_aggregate_kw) series.push({ name: "SO's view", type: 'line', data: d.so_view_aggregate_kw, showSymbol: false, lineStyle: { type: 'dashed' } });
  chart('chart-coord-load', { title: { text: 'Load of the region (kW), Fig. 3', left: 'center', bottom: 0, top: 'auto', textStyle: { fontSize: 12 } },
    xAxis: { type: 'category', data: x }, yAxis: { type: 'value', name: 'kW', scale: true }, series });
  if (d.ev_load_by_bus_kw) {
    const buses = Object.keys(d.ev_load_by_bus_kw).sort();
    chart('chart-coord-ev', { title: { text: "EVs' load per bus (kW), Fig. 4", left: 'center', bottom: 0, top: 'auto', textStyle: { fontSize: 12 } },
      legend: { top: 0, type: 'scroll' }, xAxis: { type: 'category', data: x }, yAxis: { type: 'value', name: 'kW' },
      series: buses.map((b) => ({ name: b, type: 'line', stack: 'ev', areaStyle: {}, showSymbol: false, data: d.ev_load_by_bus_kw[b] })) });
  }
  if (d.lowest_feeder_voltages_pu) {
    const buses = Object.keys(d.lowest_feeder_voltages_pu).sort();
    const s = buses.map((b) => ({ name: b, type: 'line', showSymbol: false, data: d.lowest_feeder_voltages_pu[b] }));
    if (s.length) s[0].markLine = { symbol: 'none', data: [{ yAxis: d.vmin_pu }], label: { formatter: 'vmin' }, lineStyle: { color: '#c0392b' } };
    chart('chart-coord-volt', { title: { text: 'Voltages of ' + d.lowest_feeder + ' (pu), Fig. 6', left: 'center', bottom: 0, top: 'auto', textStyle: { fontSize: 12 } },
      legend: { top: 0, type: 'scroll' }, xAxis: { type: 'category', data: x }, yAxis: { type: 'value', name: 'pu', scale: true }, series: s });
  }
  if (d.convergence) {
    const c = d.convergence;
    convChart('chart-coord-conv', 'Convergence of the finished run (' + (c.source === 'solver' ? "the solver's record" : "the SO's progress messages") + ')', c.points, false);
  }
  if (d.multiplier_max) {
    chart('chart-coord-mu', { title: { text: 'Largest voltage multiplier per slot', left: 'center', bottom: 0, top: 'auto', textStyle: { fontSize: 12 } },
      xAxis: { type: 'category', data: x }, yAxis: { type: 'value' }, series: [{ name: 'max mu', type: 'bar', data: d.multiplier_max }] });
  }
}

// convSeries are the convergence chart's series from points (the live
// history or convergence.json's): change and gap on a log axis, so
// non-positive values are left out; the objective on its own axis.
function convSeries(h) {
  const pos = (v) => (v !== null && v !== undefined && v > 0 ? v : null);
  return [
    { name: 'change (kW)', type: 'line', showSymbol: false, data: h.map((q) => [q.iteration, pos(q.change_kw)]) },
    { name: 'relative gap', type: 'line', showSymbol: true, connectNulls: true, data: h.map((q) => [q.iteration, pos(q.relative_gap)]) },
    { name: 'objective', type: 'line', showSymbol: false, yAxisIndex: 1, data: h.map((q) => [q.iteration, q.objective]) },
  ];
}

function convChart(id, title, h, merge) {
  chart(id, { title: { text: title, left: 'center', bottom: 0, top: 'auto', textStyle: { fontSize: 12 } },
    xAxis: { type: 'value', name: 'iteration', min: 'dataMin', max: 'dataMax' },
    yAxis: [{ type: 'log', name: 'change kW, gap' }, { type: 'value', name: 'objective', scale: true }],
    series: convSeries(h) }, merge);
}

function renderLive() {
  const s = gv.live;
  if (!s) return;
  const badge = $('live-badge');
  if (!s.following) {
    badge.textContent = 'not following';
    $('live-status').textContent = 'This dashboard follows no coordination: start it with --nats URL (the platform\'s NATS server, e.g. of gridveil up) to see one live.';
  } else {
    badge.textContent = s.latest ? 'live: iteration ' + s.latest.iteration : 'live: waiting';
    $('live-status').textContent = 'Following ' + s.subject + (s.latest ? '' : '; no progress message yet (the SO publishes one per completed iteration).');
  }
  badge.className = 'badge' + (s.following ? ' live' : '');
  setText('live-day', s.day);
  setText('live-updates', s.updates);
  setText('live-refused', s.refused);
  const p = s.latest;
  setText('live-iter', p ? p.iteration : null);
  setText('live-objective', p ? p.objective : null);
  setText('live-change', p ? p.change_kw : null);
  setText('live-gap', p ? p.relative_gap : null);
  setText('live-violation', p ? p.violation_pu : null);
  setText('live-converged', p ? String(p.converged) : null);
  if (!gv.rendered.coordination) return;
  if (!p) return;
  const coord = gv.data.coordination || {};
  const agg = p.so_view_aggregate_kw || [];
  const x = slotLabels(agg.length, coord.start, coord.dt_hours);
  const series = [{ id: 'live', name: "SO's aggregate, iteration " + p.iteration, type: 'line', showSymbol: false, data: agg }];
  if (coord.baseline_kw && coord.baseline_kw.length === agg.length) series.unshift({ name: 'baseline (the run\'s files)', type: 'line', showSymbol: false, data: coord.baseline_kw });
  chart('chart-live-agg', { title: { text: 'Live: load per slot (kW)', left: 'center', bottom: 0, top: 'auto', textStyle: { fontSize: 12 } },
    xAxis: { type: 'category', data: x }, yAxis: { type: 'value', name: 'kW', scale: true }, series }, false);
  convChart('chart-live-conv', 'Live: convergence', s.history, true);
}

function renderPrivacy(d) {
  showAbsent('privacy', d.absent);
  if (d.mechanisms && d.mechanisms.length) {
    const th = document.querySelector('#privacy-table thead');
    const tb = document.querySelector('#privacy-table tbody');
    clear(th); clear(tb);
    row(th, ['mechanism'].concat(d.adversaries).concat(['prior', 'bus mean']), false);
    d.mechanisms.forEach((m) => {
      const tr = row(tb, [m.mechanism].concat(d.adversaries.map((a) => m.rmse_kw[a])).concat([m.prior_rmse_kw, m.bus_mean_rmse_kw]), true);
      tr.dataset.mechanism = m.mechanism;
    });
    // A log axis: exact recoveries (RMSE 0) are left out, dp's noise spans decades.
    chart('chart-privacy-rmse', { xAxis: { type: 'category', data: d.adversaries }, yAxis: { type: 'log', name: 'RMSE kW (log)' },
      series: d.mechanisms.map((m, i) => {
        const s = { name: m.mechanism, type: 'bar', data: d.adversaries.map((a) => (m.rmse_kw[a] > 0 ? m.rmse_kw[a] : null)) };
        if (i === 0) s.markLine = { symbol: 'none', data: [{ yAxis: m.prior_rmse_kw, name: 'prior' }], label: { formatter: 'prior' } };
        return s;
      }) });
  }
  const rec = d.received;
  if (!rec) return;
  const sel = $('privacy-bus');
  if (!sel.options.length) {
    d.buses.forEach((b) => option(sel, b));
    sel.addEventListener('change', async () => {
      try { gv.data.privacy = await getJSON('/api/v1/privacy?bus=' + encodeURIComponent(sel.value)); renderPrivacy(gv.data.privacy); } catch (e) { showAbsent('privacy', [e.message]); }
    });
  }
  sel.value = rec.bus;
  const mech = d.so_view_mechanism;
  const masked = rec.reports.some((r) => r.words);
  $('privacy-explain').textContent = 'Mechanism ' + mech + ', iteration ' + rec.iteration + '; ' + rec.shown + ' of the bus\'s ' + rec.total + ' vehicles shown. ' +
    (masked ? 'Each vehicle sent masked words: uniformly random numbers on their own; only their sum over the bus is meaningful, so the SO learns the bus total and nothing of one vehicle.'
      : (mech === 'obfuscation' ? 'Each vehicle sent several rows of plausible values, one of them real: every row is close to a real schedule, which is why obfuscation hides little.'
        : 'Each vehicle sent its values as they are: the SO sees every schedule.'));
  const tb = document.querySelector('#privacy-received tbody');
  clear(tb);
  const k = 4;
  rec.reports.forEach((r) => {
    const got = r.words ? r.words.slice(0, k).join(' ') : (r.kw || []).slice(0, k).map((v) => fmt(v, 4)).join(' ');
    const tr = row(tb, [r.ev, r.rows, r.in_sum === undefined ? '-' : String(r.in_sum), got, (r.true_kw || []).slice(0, k).map((v) => fmt(v, 4)).join(' ')]);
    tr.dataset.ev = r.ev;
  });
  const T = rec.bus_sum_kw ? rec.bus_sum_kw.length : 0;
  const truth = new Array(T).fill(0);
  rec.reports.forEach((r) => (r.true_kw || []).forEach((v, t) => { truth[t] += v; }));
  const series = [{ name: 'bus sum the SO recovered', type: 'line', showSymbol: false, data: rec.bus_sum_kw }];
  if (rec.shown === rec.total && rec.reports.every((r) => r.true_kw)) series.push({ name: 'true sum of the bus', type: 'line', showSymbol: false, lineStyle: { type: 'dashed' }, data: truth });
  const first = rec.reports[0];
  if (first && first.kw) series.push({ name: first.ev + ': first row received', type: 'line', showSymbol: false, data: first.kw });
  if (first && first.true_kw) series.push({ name: first.ev + ': true schedule', type: 'line', showSymbol: false, data: first.true_kw });
  chart('chart-privacy-recv', { xAxis: { type: 'category', data: slotLabels(T) }, yAxis: { type: 'value', name: 'kW' }, series });
}

function renderMarket(d) {
  showAbsent('market', d.absent);
  if (!d.windows) return;
  setText('market-rule', d.rule);
  setText('market-chain', d.chain);
  setText('market-blocks', d.blocks);
  $('market-apphash').textContent = d.app_hash;
  setText('market-gridfees', d.grid_fees);
  let vol = 0, trades = 0, refused = 0;
  d.windows.forEach((w) => { vol += w.volume_wh; trades += w.trades; refused += w.refused; });
  setText('market-volume', vol);
  setText('market-trades', trades);
  setText('market-refused', refused);
  const x = d.windows.map((w) => String(w.index));
  chart('chart-market-price', { xAxis: { type: 'category', data: x, name: 'window' },
    yAxis: [{ type: 'value', name: 'Wh' }, { type: 'value', name: 'price' }],
    series: [
      { name: 'volume (Wh)', type: 'bar', data: d.windows.map((w) => w.volume_wh) },
      { name: 'clearing price', type: 'line', yAxisIndex: 1, data: d.windows.map((w) => w.price) },
      { name: 'congestion fees', type: 'line', yAxisIndex: 1, data: d.windows.map((w) => w.congestion_fees) },
    ] });
  chart('chart-market-rights', { xAxis: { type: 'category', data: x, name: 'window' }, yAxis: { type: 'value', name: 'Wh' },
    series: [
      { name: 'demand', type: 'line', data: d.windows.map((w) => w.demand_wh) },
      { name: 'rights before', type: 'bar', data: d.windows.map((w) => w.rights_before_wh) },
      { name: 'rights after', type: 'bar', data: d.windows.map((w) => w.rights_after_wh) },
      { name: 'unmet', type: 'line', data: d.windows.map((w) => w.unmet_wh) },
    ] });
  const sel = $('market-window');
  if (!sel.options.length) {
    let best = 0;
    d.windows.forEach((w, i) => { option(sel, i, String(w.index)); if (w.bid_wh + w.ask_wh > d.windows[best].bid_wh + d.windows[best].ask_wh) best = i; });
    sel.value = String(best);
    sel.addEventListener('change', () => drawDepth(d, +sel.value));
  }
  drawDepth(d, +sel.value);
  const tb = document.querySelector('#market-refusals tbody');
  clear(tb);
  const reasons = Object.keys(d.refusals || {}).sort();
  if (!reasons.length) row(tb, ['none refused']);
  reasons.forEach((r) => row(tb, [r, d.refusals[r]], true));
}

function drawDepth(d, i) {
  const w = d.windows[i];
  const bids = (w.bid_depth || []).map((l) => [l.price, l.cumulative_wh]);
  const asks = (w.ask_depth || []).map((l) => [l.price, l.cumulative_wh]);
  chart('chart-market-depth', { title: { text: 'Order book depth, window ' + w.index + ' (price ' + w.price + ')', left: 'center', bottom: 0, top: 'auto', textStyle: { fontSize: 12 } },
    xAxis: { type: 'value', name: 'price', scale: true }, yAxis: { type: 'value', name: 'cumulative Wh' },
    series: [
      { name: 'bids', type: 'line', step: 'end', data: bids },
      { name: 'asks', type: 'line', step: 'start', data: asks },
    ] });
}

function renderAuth(d) {
  showAbsent('auth', d.absent);
  const b = d.batches || {};
  setText('auth-admitted', d.admitted);
  setText('auth-resumed', d.resumed);
  setText('auth-revocations', d.revocations);
  setText('auth-batches', b.count);
  setText('auth-batch-requests', b.requests);
  setText('auth-batch-max', b.max_size);
  setText('auth-verify-total', b.verify_seconds_total);
  setText('auth-verify-max', b.verify_seconds_max);
  let refused = 0;
  const tb = document.querySelector('#auth-refused tbody');
  clear(tb);
  const reasons = Object.keys(d.refused || {}).sort();
  if (!reasons.length) row(tb, ['none refused']);
  reasons.forEach((r) => { refused += d.refused[r]; row(tb, [r, d.refused[r]], true).dataset.reason = r; });
  setText('auth-refused-total', refused);
  const tp = document.querySelector('#auth-parties tbody');
  clear(tp);
  Object.keys(d.parties || {}).sort().forEach((p) => row(tp, [p, d.parties[p]], true));
  if (b.sizes && b.sizes.length) {
    const x = b.sizes.map((_, i) => String(i + 1));
    chart('chart-auth-batches', { title: { text: 'Batch verifications: requests and wall time (ms)', left: 'center', bottom: 0, top: 'auto', textStyle: { fontSize: 12 } },
      xAxis: { type: 'category', data: x, name: 'batch' }, yAxis: [{ type: 'value', name: 'requests' }, { type: 'value', name: 'ms' }],
      series: [
        { name: 'requests', type: 'bar', data: b.sizes },
        { name: 'verification (ms)', type: 'line', yAxisIndex: 1, data: b.verify_seconds.map((s) => s * 1000) },
      ] });
  }
}

function renderMeters(m, h) {
  const ul = $('meters-absent');
  clear(ul);
  (m.absent || []).forEach((a) => { const li = document.createElement('li'); li.textContent = a; ul.appendChild(li); });
  const pop = m.population;
  if (pop) {
    const tb = document.querySelector('#ldp-table tbody');
    clear(tb);
    pop.mechanisms.forEach((x) => { row(tb, [x.name, x.sum_truth_kw, x.sum_estimate_kw, fmt(x.sum_ci95_kw[0]) + ' to ' + fmt(x.sum_ci95_kw[1])], true).dataset.mechanism = x.name; });
    chart('chart-ldp-sweep', { title: { text: pop.meters + ' meters: RMSE of the mean (kW) against epsilon', left: 'center', bottom: 0, top: 'auto', textStyle: { fontSize: 12 } },
      legend: { top: 0, type: 'scroll' }, xAxis: { type: 'log', name: 'epsilon' }, yAxis: { type: 'log', name: 'kW' },
      series: pop.mechanisms.map((x) => ({ name: x.name, type: 'line', data: x.epsilons.map((e, i) => [e, x.empirical_rmse_mean_kw[i]]) })) });
  }
  const b = m.baseline;
  if (b) {
    $('ldp-baseline-info').textContent = 'The SO coordinated on its ' + b.mechanism + ' LDP estimate of the baseline: ' + b.meters_per_bus + ' meters per bus, epsilon ' + fmt(b.epsilon_per_day) +
      ' spent per meter over the day; RMSE ' + fmt(b.rmse_kw, 4) + ' kW per bus-slot. The band is 1.96 standard deviations.';
    const lo = b.estimate_kw.map((v, t) => v - b.band_kw[t]);
    const width = b.band_kw.map((v) => 2 * v);
    chart('chart-ldp-baseline', { xAxis: { type: 'category', data: slotLabels(b.true_kw.length) }, yAxis: { type: 'value', name: 'kW', scale: true },
      series: [
        { name: 'band low', type: 'line', stack: 'band', data: lo, lineStyle: { opacity: 0 }, showSymbol: false, tooltip: { show: false } },
        { name: '95% band', type: 'line', stack: 'band', data: width, lineStyle: { opacity: 0 }, areaStyle: { color: '#4fa3e0', opacity: 0.3 }, showSymbol: false },
        { name: 'LDP estimate', type: 'line', data: b.estimate_kw, showSymbol: false },
        { name: 'true baseline', type: 'line', data: b.true_kw, showSymbol: false, lineStyle: { type: 'dashed' } },
      ] });
  }
  const hu = $('homes-absent');
  clear(hu);
  (h.absent || []).forEach((a) => { const li = document.createElement('li'); li.textContent = a; hu.appendChild(li); });
  if (!h.totals) return;
  const tt = document.querySelector('#home-totals tbody');
  clear(tt);
  h.totals.forEach((t) => { row(tt, [t.scheduler, t.cost_mean, t.r2_mean, t.f1_mean, t.f1_prior_mean], true).dataset.scheduler = t.scheduler; });
  const hs = $('home-select'), ss = $('home-scheduler');
  if (!hs.options.length) {
    for (let i = 0; i < h.homes; i++) option(hs, i);
    h.schedulers.forEach((s) => option(ss, s));
    const reload = async () => {
      try { gv.data.homes = await getJSON('/api/v1/homes?home=' + hs.value + '&scheduler=' + encodeURIComponent(ss.value)); renderMeters(gv.data.meters, gv.data.homes); } catch (e) { $('home-info').textContent = e.message; }
    };
    hs.addEventListener('change', reload);
    ss.addEventListener('change', reload);
  }
  const day = h.day;
  if (!day) return;
  hs.value = String(day.home);
  ss.value = day.scheduler;
  $('home-info').textContent = 'Home ' + day.home + ' under ' + day.scheduler + ': the NILM attacker (' + (day.detector || '-') + ') scores F1 ' + fmt(day.f1, 4) + ' on the meter.';
  chart('chart-home-day', { xAxis: { type: 'category', data: slotLabels(day.load_kw.length, '00:00', day.dt_hours) }, yAxis: { type: 'value', name: 'kW' },
    series: [
      { name: 'household load', type: 'line', showSymbol: false, data: day.load_kw },
      { name: 'meter (' + day.scheduler + ')', type: 'line', showSymbol: false, data: day.meter_kw },
    ] });
  const td = document.querySelector('#home-detect tbody');
  clear(td);
  const slots = (iv) => { const s = new Set(); (iv || []).forEach((p) => { for (let t = p[0]; t < p[1]; t++) s.add(t); }); return s; };
  const kinds = new Set(Object.keys(day.truth || {}).concat(Object.keys(day.detected || {})));
  Array.from(kinds).sort().forEach((k) => {
    const a = slots((day.truth || {})[k]), b2 = slots((day.detected || {})[k]);
    let both = 0;
    a.forEach((t) => { if (b2.has(t)) both++; });
    row(td, [k, a.size, b2.size, both], true).dataset.appliance = k;
  });
}

// ---- navigation and start ----

const renderers = {
  overview: () => renderOverview(gv.data.run),
  feeder: () => renderFeeder(gv.data.feeder),
  coordination: () => { renderCoordination(gv.data.coordination); renderLive(); },
  privacy: () => renderPrivacy(gv.data.privacy),
  market: () => renderMarket(gv.data.market),
  auth: () => renderAuth(gv.data.auth),
  meters: () => renderMeters(gv.data.meters, gv.data.homes),
};

function show() {
  let view = (location.hash || '#overview').slice(1);
  if (!renderers[view]) view = 'overview';
  document.querySelectorAll('.view').forEach((s) => s.classList.toggle('shown', s.id === 'view-' + view));
  document.querySelectorAll('#nav a').forEach((a) => a.classList.toggle('active', a.dataset.view === view));
  if (!gv.rendered[view]) {
    gv.rendered[view] = true;
    renderers[view]();
    document.getElementById('view-' + view).dataset.rendered = '1';
  }
  Object.values(gv.charts).forEach((c) => c.resize());
}

function connect() {
  const es = new EventSource('/api/v1/events');
  gv.events = es;
  es.addEventListener('state', (e) => {
    gv.live = JSON.parse(e.data);
    gv.streamStates = (gv.streamStates || 0) + 1;
    renderLive();
  });
  es.addEventListener('progress', (e) => {
    const d = JSON.parse(e.data);
    if (!gv.live) return;
    gv.live.day = d.day;
    gv.live.updates = d.updates;
    gv.live.refused = d.refused;
    gv.live.latest = d.latest;
    d.points.forEach((q) => {
      const h = gv.live.history;
      // A point of the iteration the page has last replaces it (the SO's
      // certification of that iteration).
      if (h.length && h[h.length - 1].iteration === q.iteration) h[h.length - 1] = q;
      else if (!h.length || h[h.length - 1].iteration < q.iteration) h.push(q);
    });
    gv.streamDeltas = (gv.streamDeltas || 0) + 1;
    renderLive();
  });
  es.addEventListener('open', () => { $('live-badge').classList.remove('down'); });
  es.addEventListener('error', () => {
    // EventSource retries by itself; the server sends the whole state again.
    $('live-badge').classList.add('down');
  });
}

// gvStartFrameMeter records the time between animation frames, for the
// performance measurement of docs/PERFORMANCE.md; nothing runs until it is
// called.
window.gvStartFrameMeter = function () {
  gv.frames = [];
  let last = performance.now();
  const tick = (now) => { gv.frames.push(now - last); last = now; if (gv.frames.length < 100000) requestAnimationFrame(tick); };
  requestAnimationFrame(tick);
};

async function start() {
  const names = ['run', 'feeder', 'coordination', 'privacy', 'market', 'auth', 'meters', 'homes'];
  const got = await Promise.all(names.map((n) => getJSON('/api/v1/' + n).catch((e) => ({ absent: [e.message] }))));
  names.forEach((n, i) => { gv.data[n] = got[i]; });
  window.addEventListener('hashchange', show);
  show();
  connect();
  document.body.dataset.ready = '1';
}

start();
