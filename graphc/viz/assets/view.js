// The graphc HTML view: pan (drag), zoom (wheel), fold a cluster (click its title), node details (hover, or
// click to pin), and a toggle between stages. The data (graphc/viz/html.py) is keyed by the SVG ids.
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("graphc-data").textContent);
  const views = Array.from(document.querySelectorAll("section.view"));
  const buttons = Array.from(document.querySelectorAll("#stages button"));
  const details = document.getElementById("details");
  const folded = data.stages.map(() => new Set());  // per stage: the ids of the folded clusters
  let current = 0;
  let pinned = null;

  // -- the stage toggle --------------------------------------------------------------------------------
  function showStage(index) {
    current = index;
    views.forEach((view, i) => { view.hidden = i !== index; });
    const svg = views[index].querySelector("svg");
    if (!svg.dataset.whole) startView(svg);
    buttons.forEach((button, i) => button.classList.toggle("active", i === index));
    const stage = data.stages[index];
    const count = document.getElementById("count");
    count.textContent = stage.nodeCount + " nodes";
    count.dataset.count = stage.nodeCount;
    count.title = stage.title;
    unpin();
  }

  // -- details -----------------------------------------------------------------------------------------
  function showDetails(id) {
    const node = data.stages[current].nodes[id];
    details.replaceChildren();
    const heading = document.createElement("h2");
    heading.textContent = node.name;
    const list = document.createElement("dl");
    const rows = [["op", node.op], ["dtype", node.dtype], ["shape", node.shape]];
    Object.entries(node.attrs).forEach(([key, value]) => rows.push(["attribute " + key, value]));
    rows.push(["inputs", node.inputs.join(", ") || "(none)"], ["source", node.source]);
    if (node.code) rows.push(["line", node.code]);
    if (node.derivativeOf) rows.push(["derivative of", node.derivativeOf]);
    if (node.kernel) rows.push(["kernel", node.kernel]);
    for (const [term, value] of rows) {
      const dt = document.createElement("dt");
      const dd = document.createElement("dd");
      dt.textContent = term;
      dd.textContent = value;
      list.append(dt, dd);
    }
    details.append(heading, list);
  }

  function showHelp() {
    const stage = data.stages[current];
    const help = document.createElement("p");
    help.className = "empty";
    help.textContent = stage.title + ". Hover over a node for its details; click it to keep them here.";
    details.replaceChildren(help);
  }

  function pin(element) {
    unpin();
    pinned = element;
    element.classList.add("selected");
    showDetails(element.id);
  }

  function unpin() {
    if (pinned) pinned.classList.remove("selected");
    pinned = null;
    showHelp();
  }

  // -- folding clusters --------------------------------------------------------------------------------
  function insideFolded(stage, id) {
    for (let parent = stage.clusters[id].parent; parent; parent = stage.clusters[parent].parent) {
      if (folded[current].has(parent)) return true;
    }
    return false;
  }

  function toggleFold(id) {
    const set = folded[current];
    if (set.has(id)) set.delete(id); else set.add(id);
    const stage = data.stages[current];
    const hidden = new Set();
    set.forEach((cluster) => stage.clusters[cluster].members.forEach((node) => hidden.add(node)));
    for (const node in stage.nodes) document.getElementById(node).classList.toggle("hidden", hidden.has(node));
    for (const [edge, tail, head] of stage.edges) {
      document.getElementById(edge).classList.toggle("hidden", hidden.has(tail) && hidden.has(head));
    }
    for (const cluster in stage.clusters) {
      const element = document.getElementById(cluster);
      const label = element.querySelector("text");
      const info = stage.clusters[cluster];
      element.classList.toggle("hidden", insideFolded(stage, cluster));
      element.classList.toggle("collapsed", set.has(cluster));
      label.textContent = set.has(cluster) ? "▸ " + info.label + " (" + info.members.length + " nodes)" : info.label;
    }
  }

  // -- pan and zoom: move and scale the SVG's viewBox ---------------------------------------------------
  const READABLE = 0.6;  // screen pixels per graph unit below which labels are too small to read

  function startView(svg) {
    // the whole graph if it is readable so, else its top at a readable scale (wheel out to see it all)
    const box = svg.viewBox.baseVal;
    svg.dataset.whole = [box.x, box.y, box.width, box.height].join(" ");
    const width = svg.clientWidth / READABLE;
    const height = svg.clientHeight / READABLE;
    if (width < box.width || height < box.height) {
      svg.setAttribute("viewBox", [box.x + (box.width - width) / 2, box.y, width, height].join(" "));
    }
  }


  function toGraph(svg, event) {
    const point = svg.createSVGPoint();
    point.x = event.clientX;
    point.y = event.clientY;
    return point.matrixTransform(svg.getScreenCTM().inverse());
  }

  function panAndZoom(svg) {
    const box = svg.viewBox.baseVal;
    let drag = null;
    svg.addEventListener("wheel", (event) => {
      event.preventDefault();
      const scale = Math.exp(event.deltaY * 0.002);
      const at = toGraph(svg, event);
      box.x = at.x - (at.x - box.x) * scale;
      box.y = at.y - (at.y - box.y) * scale;
      box.width *= scale;
      box.height *= scale;
    }, { passive: false });
    svg.addEventListener("pointerdown", (event) => {
      drag = { x: event.clientX, y: event.clientY, moved: false };
    });
    svg.addEventListener("pointermove", (event) => {
      if (!drag || (!drag.moved && Math.hypot(event.clientX - drag.x, event.clientY - drag.y) < 4)) return;
      const unit = svg.getScreenCTM().a;  // screen pixels per graph unit
      box.x -= (event.clientX - drag.x) / unit;
      box.y -= (event.clientY - drag.y) / unit;
      drag = { x: event.clientX, y: event.clientY, moved: true };
      svg.classList.add("dragging");
    });
    svg.addEventListener("pointerup", () => { svg.classList.remove("dragging"); });
    svg.addEventListener("dblclick", () => svg.setAttribute("viewBox", svg.dataset.whole));
    svg.addEventListener("click", (event) => {
      const moved = drag && drag.moved;
      drag = null;
      if (!moved) onClick(event);
    });
  }

  function onClick(event) {
    const node = event.target.closest("g.node");
    const title = event.target.closest("g.cluster > text");
    if (node) pin(node);
    else if (title) toggleFold(title.parentElement.id);
    else unpin();
  }

  // -- wiring ------------------------------------------------------------------------------------------
  views.forEach((view) => {
    const svg = view.querySelector("svg");
    panAndZoom(svg);
    svg.addEventListener("mouseover", (event) => {
      const node = event.target.closest("g.node");
      if (node && !pinned) showDetails(node.id);
    });
  });
  buttons.forEach((button, i) => button.addEventListener("click", () => showStage(i)));
  showStage(0);
})();
