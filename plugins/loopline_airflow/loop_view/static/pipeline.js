// Draws the pipeline page's charts from the history embedded in the page (one request, no
// API round trip), with Apache ECharts' SVG renderer: every drawn point is a DOM element.
"use strict";
(function () {
  const history = JSON.parse(document.getElementById("history").textContent);
  // Each series comes as a result set ({columns, rows}); the charts read records.
  const records = (table) => table.rows.map((row) => Object.fromEntries(table.columns.map((c, i) => [c, row[i]])));
  for (const name of ["ingest", "validations", "rules", "drift", "monitor", "realised", "training"]) {
    history[name] = records(history[name]);
  }
  const PASS = "#1b7f3b", FAIL = "#b3261e", WARN = "#e8a33d";

  // Charts on the first screen are drawn at once; the others when they come near the screen,
  // so the page is ready sooner and a chart nobody scrolls to costs nothing. `then(instance)`
  // runs once the chart is drawn; `data-drawn` marks a drawn chart.
  const later = new Map();
  const observer = new IntersectionObserver((entries) => entries.filter((e) => e.isIntersecting).forEach((e) => {
    observer.unobserve(e.target);
    later.get(e.target)();
  }), { rootMargin: "300px" });

  function chart(id, option, then) {
    const element = document.getElementById(id);
    const draw = () => {
      const instance = echarts.init(element, null, { renderer: "svg" });
      instance.setOption(Object.assign({ animation: false, tooltip: { trigger: "axis" },
                                          grid: { left: 150, right: 40, top: 40, bottom: 60 } }, option));
      window.addEventListener("resize", () => instance.resize());
      element.dataset.drawn = "true";
      if (then) then(instance);
    };
    if (element.getBoundingClientRect().top < window.innerHeight) draw();
    else { later.set(element, draw); observer.observe(element); }
  }

  const byDate = (rows, key) => Object.fromEntries(rows.map((r) => [r.logical_date, r[key]]));
  // Every chart opens on the last WINDOW dates; the slider below it scrolls the whole history.
  const WINDOW = 90;
  const zoom = (dates) => {
    const start = dates.length > WINDOW ? dates[dates.length - WINDOW] : undefined;
    return [{ type: "inside", startValue: start }, { type: "slider", height: 18, bottom: 8, startValue: start, showDataShadow: false }];
  };

  // A heat map is given only the cells of the dates in view, and again as the slider moves:
  // ECharts' cost grows with the items it holds, and a year of rules × dates is thousands of
  // cells. `cells[i]` are series i's cells, [date index, row index, value, ...].
  function heatmap(id, dates, cells, option, then) {
    const position = (value) => (typeof value === "number" ? value : dates.indexOf(value));
    const inView = (from, to) => cells.map((series) => series.filter((c) => c[0] >= from && c[0] <= to));
    inView(Math.max(0, dates.length - WINDOW), dates.length - 1).forEach((data, i) => { option.series[i].data = data; });
    chart(id, option, (instance) => {
      instance.on("datazoom", () => {
        const { startValue, endValue } = instance.getOption().dataZoom[0];
        instance.setOption({ series: inView(position(startValue), position(endValue)).map((data) => ({ data })) });
      });
      if (then) then(instance);
    });
  }

  // Rows per dataset and date: accepted and quarantined at ingest, rejected by contract; one
  // stacked bar per dataset, so a date's events and labels are never added up.
  const rowDatasets = [...new Set([...history.ingest, ...history.validations].map((r) => r.dataset))].sort();
  const ingestDates = [...new Set([...history.ingest, ...history.validations].map((r) => r.logical_date))].sort();
  const rowsOf = (rows, dataset, key) => byDate(rows.filter((r) => r.dataset === dataset), key);
  const ACCEPTED = ["#4e6fd8", "#2f9e8f", "#7b5cc4", "#5a8fb8"];  // a dataset's accepted rows: cool colours
  chart("chart-rows", {
    legend: { top: 0, type: "scroll" }, tooltip: { trigger: "item" }, dataZoom: zoom(ingestDates),
    xAxis: { type: "category", data: ingestDates }, yAxis: { type: "value" },
    series: rowDatasets.flatMap((dataset, i) => [
      ["accepted at ingest", rowsOf(history.ingest, dataset, "accepted"), ACCEPTED[i % ACCEPTED.length]],
      ["quarantined at ingest", rowsOf(history.ingest, dataset, "quarantined"), WARN],
      ["rejected by contract", rowsOf(history.validations, dataset, "rows_quarantined"), FAIL],
    ].map(([outcome, rows, color]) => ({
      name: `${dataset} · ${outcome}`, type: "bar", stack: dataset, itemStyle: { color },
      data: ingestDates.map((d) => rows[d] || null) }))),
  });

  // Contract rules × dates, in Loopline's terms: passed; rows quarantined (a row rule routed the
  // rows that broke it, the line went on); a warning; or the line stopped (a batch rule failed).
  const OUTCOMES = ["passed", "rows quarantined", "warning", "line stopped"];
  const OUTCOME_OF = { passed: 0, row: 1, warn: 2, batch: 3 };
  const ruleNames = history.rules.map((r) => `${r.dataset} · ${r.rule}`);
  const results = history.rules.flatMap((r, row) => r.cells.split(",").map((cell) => {
    const [day, outcome] = cell.split("="), [severity, rows] = outcome.split(":");
    return { day, row, outcome: OUTCOME_OF[severity] ?? 3, rows: rows === undefined ? null : Number(rows) };
  }));
  const ruleDates = [...new Set(results.map((r) => r.day))].sort();
  const dateIndex = Object.fromEntries(ruleDates.map((d, i) => [d, i]));
  heatmap("chart-contracts", ruleDates, [results.map((r) => [dateIndex[r.day], r.row, r.outcome, r.rows])], {
    tooltip: { formatter: (p) => `${ruleNames[p.value[1]]}<br>${ruleDates[p.value[0]]}: ${OUTCOMES[p.value[2]]}` +
                              (p.value[3] ? ` (${p.value[3]} rows)` : "") },
    grid: { left: 260, right: 40, top: 10, bottom: 90 }, dataZoom: zoom(ruleDates),
    xAxis: { type: "category", data: ruleDates }, yAxis: { type: "category", data: ruleNames },
    visualMap: { type: "piecewise", orient: "horizontal", left: "center", bottom: 34, dimension: 2,
                 pieces: [PASS, WARN, "#f2d16b", FAIL].map((color, value) => ({ value, color, label: OUTCOMES[value] })) },
    series: [{ name: "rule", type: "heatmap" }],
  }, (instance) => instance.on("click", (p) => {  // a cell opens that date's contract report
    const dataset = history.rules[p.value[1]].dataset;
    window.location.href = `${encodeURIComponent(history.pipeline)}/reports/contract/${encodeURIComponent(dataset)}/${ruleDates[p.value[0]]}/`;
  }));

  // Drift: PSI per feature × interval, coloured against the threshold; fired retraining triggers marked.
  const features = [...new Set(history.drift.map((r) => r.feature))].sort();
  const driftDates = [...new Set(history.drift.map((r) => r.logical_date))].sort();
  const driftIndex = Object.fromEntries(driftDates.map((d, i) => [d, i]));
  const featureIndex = Object.fromEntries(features.map((f, i) => [f, i]));
  const threshold = Math.max(0, ...history.monitor.map((m) => m.psi_threshold || 0)) || 0.2;
  const requests = history.monitor.filter((m) => m.retrain_requested);
  const triggers = (m) => ((m.outcomes || {}).retrain_reasons || []).map((r) => r.kind).join(", ") || "feature_drift";
  // A click on an interval opens its drift report (served by this view, behind the same login).
  const reported = new Set(history.monitor.filter((m) => m.report_uri).map((m) => m.logical_date));
  const openReport = (instance) => instance.on("click", (p) => {
    const day = driftDates[p.value[0]];
    if (reported.has(day)) window.location.href = `${encodeURIComponent(history.pipeline)}/reports/drift/${day}`;
  });
  heatmap("chart-drift", driftDates, [
    history.drift.map((r) => [driftIndex[r.logical_date], featureIndex[r.feature], r.psi]),
    requests.map((m, i) => [driftDates.indexOf(m.logical_date), features.length, i])], {
    tooltip: { formatter: (p) => p.seriesType === "heatmap" ? `${features[p.value[1]]}<br>${driftDates[p.value[0]]}: PSI ${p.value[2].toFixed(3)}`
                                                          : `${driftDates[p.value[0]]}: retraining triggers ${triggers(requests[p.value[2]])}` },
    grid: { left: 150, right: 40, top: 10, bottom: 90 }, dataZoom: zoom(driftDates),
    xAxis: { type: "category", data: driftDates }, yAxis: { type: "category", data: [...features, "retraining"] },
    visualMap: { type: "piecewise", orient: "horizontal", left: "center", bottom: 34, dimension: 2, seriesIndex: 0,
                 pieces: [{ lte: threshold / 2, color: "#e3f1e6", label: `PSI ≤ ${(threshold / 2).toFixed(2)}` },
                          { gt: threshold / 2, lte: threshold, color: "#f7d58b", label: `≤ threshold ${threshold}` },
                          { gt: threshold, color: FAIL, label: `> threshold ${threshold}` }] },
    series: [
      { name: "PSI", type: "heatmap" },
      { name: "retraining triggers", type: "scatter", symbol: "triangle", symbolSize: 12, itemStyle: { color: "#0b3d5c" } },
    ],
  }, openReport);


  // Predictions: box plot of each interval's stored predictions (5%, 25%, median, 75%, 95%) and the mean.
  const summarised = history.monitor.filter((m) => m.predictions);
  const q = (m, k) => m.predictions.quantiles[k];
  chart("chart-predictions", {
    legend: { top: 0 }, dataZoom: zoom(summarised.map((m) => m.logical_date)), xAxis: { type: "category", data: summarised.map((m) => m.logical_date) }, yAxis: { type: "value", scale: true },
    series: [
      { name: "5–95% (box: 25–75%)", type: "boxplot", data: summarised.map((m) => [q(m, "0.05"), q(m, "0.25"), q(m, "0.5"), q(m, "0.75"), q(m, "0.95")]) },
      { name: "mean", type: "line", data: summarised.map((m) => m.predictions.mean) },
    ],
  });

  // Prediction drift, label drift and calibration: the monitor's outcome measures per interval.
  const measured = history.monitor.filter((m) => m.outcomes);
  const outcome = (key) => measured.map((m) => m.outcomes[key] ?? null);
  chart("chart-outcomes", {
    legend: { top: 0 }, dataZoom: zoom(measured.map((m) => m.logical_date)),
    xAxis: { type: "category", data: measured.map((m) => m.logical_date) },
    yAxis: [{ type: "value", scale: true, name: "mean" }, { type: "value", name: "PSI", splitLine: { show: false } }],
    series: [
      { name: "realised target mean", type: "line", data: outcome("target_mean") },
      { name: "training target mean", type: "line", lineStyle: { type: "dashed" }, data: outcome("reference_mean") },
      { name: "mean prediction (same rows)", type: "line", data: outcome("mean_prediction") },
      { name: "prediction PSI vs holdout", type: "bar", yAxisIndex: 1, data: outcome("prediction_psi"), itemStyle: { color: "#c5cdd6" } },
    ],
  });

  // Realised performance: champion and previous champion on the same labels, and the holdout
  // score each serving champion was promoted with.
  const holdout = Object.fromEntries(history.training.filter((t) => t.model_version).map((t) => [t.model_version, t.candidate_score]));
  const judged = history.realised.filter((r) => r.champion_score !== null);
  chart("chart-realised", {
    legend: { top: 0 }, dataZoom: zoom(judged.map((r) => r.logical_date)), xAxis: { type: "category", data: judged.map((r) => r.logical_date) }, yAxis: { type: "value", scale: true },
    series: [
      { name: "champion (realised)", type: "line", data: judged.map((r) => r.champion_score) },
      { name: "previous champion (same labels)", type: "line", data: judged.map((r) => r.previous_score) },
      { name: "champion's holdout score", type: "line", step: "middle", lineStyle: { type: "dashed" },
        data: judged.map((r) => holdout[r.champion_version] ?? null) },
    ],
  });

  // Realised performance per critical slice value × date: the champion's score (the tooltip
  // adds the previous champion's and the labelled rows); a slice too small to score is left blank.
  const sliceNames = [...new Set(judged.flatMap((r) => Object.entries(r.slices || {}).flatMap(
    ([field, values]) => values.map((v) => `${field} = ${v.value}`))))].sort();
  const sliceDates = judged.map((r) => r.logical_date);
  const sliceCells = judged.flatMap((r, day) => Object.entries(r.slices || {}).flatMap(([field, values]) => values
    .filter((v) => v.champion !== null)
    .map((v) => [day, sliceNames.indexOf(`${field} = ${v.value}`), v.champion, v.previous, v.rows])));
  const scores = sliceCells.map((c) => c[2]);
  heatmap("chart-slices", sliceDates, [sliceCells], {
    tooltip: { formatter: (p) => `${sliceNames[p.value[1]]}<br>${sliceDates[p.value[0]]}: champion ${p.value[2].toFixed(4)}, ` +
                              `previous champion ${p.value[3].toFixed(4)} (${p.value[4]} labelled rows)` },
    grid: { left: 200, right: 40, top: 10, bottom: 90 }, dataZoom: zoom(sliceDates),
    xAxis: { type: "category", data: sliceDates }, yAxis: { type: "category", data: sliceNames },
    visualMap: { type: "continuous", orient: "horizontal", left: "center", bottom: 34, dimension: 2, calculable: false,
                 min: Math.min(...scores, 0), max: Math.max(...scores, 1), inRange: { color: ["#f4f8fb", "#0b3d5c"] } },
    series: [{ name: "champion per slice", type: "heatmap" }],
  });
})();
