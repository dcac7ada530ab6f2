"""Inline style and script of the report (no external resources at all).

SENTINEL runs first in <head>: it records any script error into #js-errors (and on
<html data-js-errors>), so a test reading the DOM of a headless browser sees it. SCRIPT
runs last: legend entries toggle their series, and each chart gets data-marks (the number
of drawn marks) before <body data-report-ready="1"> is set.
"""

SENTINEL = r"""
(function(){
  var errs = [];
  function note(msg){
    errs.push(String(msg));
    document.documentElement.setAttribute('data-js-errors', String(errs.length));
    var box = document.getElementById('js-errors');
    if (box) { box.textContent = errs.join('\n'); }
  }
  window.addEventListener('error', function(e){ note((e.message || 'error') + ' @' + (e.lineno || '?')); });
  window.addEventListener('unhandledrejection', function(e){ note('unhandled rejection: ' + e.reason); });
  window.__chatloadErrors = errs;
})();
"""

SCRIPT = r"""
(function(){
  var plots = document.querySelectorAll('svg.plot');
  plots.forEach(function(svg){
    svg.setAttribute('data-marks', String(svg.querySelectorAll('.mark').length));
    svg.querySelectorAll('g.legend').forEach(function(item){
      item.style.cursor = 'pointer';
      item.addEventListener('click', function(){
        var name = item.getAttribute('data-series');
        svg.querySelectorAll('g.series').forEach(function(g){
          if (g.getAttribute('data-series') === name) {
            var hidden = g.style.display === 'none';
            g.style.display = hidden ? '' : 'none';
            item.style.opacity = hidden ? '1' : '0.35';
          }
        });
      });
    });
  });
  var box = document.getElementById('js-errors');
  if (box && window.__chatloadErrors && window.__chatloadErrors.length) { box.textContent = window.__chatloadErrors.join('\n'); }
  document.body.setAttribute('data-plots', String(plots.length));
  document.body.setAttribute('data-report-ready', '1');
})();
"""

CSS = """
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:0;color:#1d2330;background:#f6f7f9}
header{background:#1d2330;color:#f6f7f9;padding:16px 28px}
header h1{margin:0;font-size:22px}.sub{margin:4px 0;color:#c3c9d5}
.status{display:inline-block;margin:6px 0;padding:2px 10px;border-radius:10px;background:#2ca02c;color:#fff}
.status.bad{background:#d62728}
.status.plain{background:#6b7280}
nav a{color:#9cc3ff;margin-right:14px;text-decoration:none}
main{padding:8px 28px 28px;max-width:1100px}
section{background:#fff;border:1px solid #dde1e8;border-radius:6px;padding:12px 18px;margin:16px 0}
h2{margin:4px 0 8px;font-size:18px}h3{font-size:15px;margin:14px 0 6px}
.note{color:#5b6476;font-size:13px;margin:2px 0 8px}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin-top:16px}
.card{background:#fff;border:1px solid #dde1e8;border-radius:6px;padding:10px 16px;min-width:110px}
.card .v{font-size:22px;font-weight:600}.card .l{color:#5b6476;font-size:12px}
.card.bad .v{color:#d62728}
table{border-collapse:collapse;margin:6px 0 10px;font-size:13px}
th,td{border-bottom:1px solid #e6e9ef;padding:3px 10px;text-align:left;vertical-align:top}
td.num{text-align:right;font-variant-numeric:tabular-nums}td.na,p.na{color:#9aa1ad}
code{font-size:12px;word-break:break-all}
svg.plot{display:block;margin:10px 0;background:#fff;max-width:100%;height:auto}
svg .title{font-weight:600;font-size:13px}svg text{font-size:11px;fill:#333}
svg .axis{stroke:#555}svg .tick{stroke:#555}svg .grid{stroke:#eceff3}
svg .marker{stroke:#444;stroke-dasharray:4 3}svg .marker-label{font-size:10px}
svg .empty{fill:#9aa1ad;font-size:14px}
svg circle.mark{stroke:none;opacity:.75}svg rect.mark{stroke:none;opacity:.85}
.js-errors{color:#d62728;white-space:pre-wrap;padding:0 28px}
"""
