// Draws the pipeline page's charts from the history embedded in the page (one request, no
// API round trip), with Apache ECharts' SVG renderer: every point is a DOM element.
"use strict";
(function () {
  const history = JSON.parse(document.getElementById("history").textContent);
  // Each series comes as a result set ({columns, rows}); the charts read records.
  const records = (table) => table.rows.map((row) => Object.fromEntries(table.columns.map((c, i) => [c, row[i]])));
  for (const name of ["ingest", "validations", "rules", "drift", "monitor", "realised", "training"]) {
    history[name] = records(history[name]);
  }
  const PASS = "#1b7f3b", FAIL = "#b3261e", WARN = "#e8a33d";

  function chart(id, option) {
    const element = document.getElementById(id);
    const instance = echarts.init(element, null, { renderer: "svg" });
    instance.setOption(Object.assign({ animation: false, tooltip: { trigger: "axis" },
                                        grid: { left: 150, right: 40, top: 40, bottom: 60 } }, option));
    window.addEventListener("resize", () => instance.resize());
    element.dataset.points = String(option.series.reduce((n, s) => n + (s.data ? s.data.length : 0), 0));
    return instance;
  }

  const byDate = (rows, key) => Object.fromEntries(rows.map((r) => [r.logical_date, r[key]]));
  // Every chart opens on the last WINDOW dates; the slider below it scrolls the whole history.
  const WINDOW = 90;
  const zoom = (dates) => {
    const start = dates.length > WINDOW ? dates[dates.length - WINDOW] : undefined;
    return [{ type: "inside", startValue: start }, { type: "slider", height: 18, bottom: 8, startValue: start }];
  };

  // Rows per date: accepted and quarantined at ingest, rejected by contract.
  const rejected = {};
  history.validations.forEach((v) => { rejected[v.logical_date] = (rejected[v.logical_date] || 0) + v.rows_quarantined; });
  const ingestDates = [...new Set([...history.ingest.map((r) => r.logical_date), ...Object.keys(rejected)])].sort();
  const accepted = byDate(history.ingest, "accepted"), quarantined = byDate(history.ingest, "quarantined");
  chart("chart-rows", {
    legend: { top: 0 }, dataZoom: zoom(ingestDates), xAxis: { type: "category", data: ingestDates }, yAxis: { type: "value" },
    series: [
      { name: "accepted at ingest", type: "bar", data: ingestDates.map((d) => accepted[d] ?? null) },
      { name: "quarantined at ingest", type: "bar", data: ingestDates.map((d) => quarantined[d] ?? null), itemStyle: { color: WARN } },
      { name: "rejected by contract", type: "bar", data: ingestDates.map((d) => rejected[d] ?? null), itemStyle: { color: FAIL } },
    ],
  });

  // Contract rules × dates: pass, fail (rows quarantined by a row rule, or the line stopped).
  const ruleNames = [...new Set(history.rules.map((r) => `${r.dataset} · ${r.rule}`))];
  const ruleDates = [...new Set(history.rules.map((r) => r.logical_date))].sort();
  chart("chart-contracts", {
    tooltip: { formatter: (p) => `${ruleNames[p.value[1]]}<br>${ruleDates[p.value[0]]}: ${p.value[2] ? "passed" : "failed"}` +
                              (p.value[3] ? ` (${p.value[3]} rows)` : "") },
    grid: { left: 260, right: 40, top: 10, bottom: 60 }, dataZoom: zoom(ruleDates),
    xAxis: { type: "category", data: ruleDates }, yAxis: { type: "category", data: ruleNames },
    visualMap: { type: "piecewise", show: false, dimension: 2, pieces: [{ value: 1, color: PASS }, { value: 0, color: FAIL }] },
    series: [{ name: "rule", type: "heatmap", data: history.rules.map((r) => [
      ruleDates.indexOf(r.logical_date), ruleNames.indexOf(`${r.dataset} · ${r.rule}`), r.success ? 1 : 0, r.unexpected_count]) }],
  });

  // Drift: PSI per feature × interval, coloured against the threshold; retraining requests marked.
  const features = [...new Set(history.drift.map((r) => r.feature))].sort();
  const driftDates = [...new Set(history.drift.map((r) => r.logical_date))].sort();
  const threshold = Math.max(0, ...history.monitor.map((m) => m.psi_threshold || 0)) || 0.2;
  const requests = history.monitor.filter((m) => m.retrain_requested);
  const drift = chart("chart-drift", {
    tooltip: { formatter: (p) => p.seriesType === "heatmap" ? `${features[p.value[1]]}<br>${driftDates[p.value[0]]}: PSI ${p.value[2].toFixed(3)}`
                                                          : `${driftDates[p.value[0]]}: retraining requested` },
    grid: { left: 150, right: 40, top: 10, bottom: 90 }, dataZoom: zoom(driftDates),
    xAxis: { type: "category", data: driftDates }, yAxis: { type: "category", data: [...features, "retraining"] },
    visualMap: { type: "piecewise", orient: "horizontal", left: "center", bottom: 34, dimension: 2, seriesIndex: 0,
                 pieces: [{ lte: threshold / 2, color: "#e3f1e6", label: `PSI ≤ ${(threshold / 2).toFixed(2)}` },
                          { gt: threshold / 2, lte: threshold, color: "#f7d58b", label: `≤ threshold ${threshold}` },
                          { gt: threshold, color: FAIL, label: `> threshold ${threshold}` }] },
    series: [
      { name: "PSI", type: "heatmap", data: history.drift.map((r) => [driftDates.indexOf(r.logical_date), features.indexOf(r.feature), r.psi]) },
      { name: "retraining requested", type: "scatter", symbol: "triangle", symbolSize: 12, itemStyle: { color: "#0b3d5c" },
        data: requests.map((m) => [driftDates.indexOf(m.logical_date), features.length]) },
    ],
  });
  // A click on an interval opens its drift report (served by this view, behind the same login).
  const reported = new Set(history.monitor.filter((m) => m.report_uri).map((m) => m.logical_date));
  drift.on("click", (p) => {
    const day = driftDates[p.value[0]];
    if (reported.has(day)) window.location.href = `${encodeURIComponent(history.pipeline)}/reports/drift/${day}`;
  });

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
})();
