// Draws every <canvas data-chart="ID"> as a stacked daily bar chart from the JSON island ID.
(function () {
  const palette = ["#0b5cad", "#d35400", "#1e8449", "#8e44ad", "#b7950b", "#c0392b", "#7f8c8d"];
  function draw(canvas) {
    const source = document.getElementById(canvas.dataset.chart);
    if (!source || typeof Chart === "undefined") return;
    const data = JSON.parse(source.textContent);
    new Chart(canvas, {
      type: "bar",
      data: {
        labels: data.labels,
        datasets: data.series.map((series, i) => ({
          label: series.label,
          data: series.data,
          backgroundColor: palette[i % palette.length],
          stack: "spend",
        })),
      },
      options: {
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        scales: {
          x: { stacked: true, ticks: { maxTicksLimit: 10 } },
          y: { stacked: true, ticks: { callback: (value) => "$" + value } },
        },
        plugins: {
          tooltip: { callbacks: { label: (item) => `${item.dataset.label}: $${item.parsed.y.toFixed(2)}` } },
        },
      },
    });
  }
  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll("canvas[data-chart]").forEach(draw);
  });
})();
