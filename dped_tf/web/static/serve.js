// Upload with progress, then poll the job until the enhanced photo is ready.
(function () {
  const $ = function (id) { return document.getElementById(id); };
  function fail(message) { $("error").textContent = message; $("bar").hidden = true; }

  function poll(job) {
    fetch("/jobs/" + job).then(function (r) { return r.json(); }).then(function (s) {
      if (s.state === "error") { $("status").textContent = ""; fail(s.error); return; }
      if (s.state !== "done") {
        $("status").textContent = s.state === "queued"
          ? "Waiting for " + s.queued + " photo(s) ahead…"
          : "Enhancing " + s.name + "… " + s.seconds + " s";
        setTimeout(function () { poll(job); }, 500);
        return;
      }
      $("status").textContent = "Enhanced " + s.name + " in " + s.seconds + " s.";
      $("bar").hidden = true;
      $("size").textContent = "(" + s.size[0] + " x " + s.size[1] + " pixels)";
      $("before").src = "/jobs/" + job + "/before";
      $("after").src = "/jobs/" + job + "/after";
      $("download").href = "/jobs/" + job + "/download";
      $("download").setAttribute("download", s.name);
      $("result").hidden = false;
    }).catch(function (e) { fail("lost the server: " + e); });
  }

  $("photo").addEventListener("change", function () {
    const file = this.files[0];
    if (!file) return;
    $("error").textContent = "";
    $("result").hidden = true;
    $("bar").hidden = false;
    $("bar").removeAttribute("value");
    const xhr = new XMLHttpRequest();
    xhr.open("PUT", "/upload?name=" + encodeURIComponent(file.name));
    xhr.setRequestHeader("X-CSRF-Token", document.querySelector("main").dataset.csrf);
    xhr.upload.onprogress = function (e) {
      if (e.lengthComputable) {
        $("bar").value = Math.round(100 * e.loaded / e.total);
        $("status").textContent = "Uploading… " + $("bar").value + "%";
      }
    };
    xhr.onload = function () {
      let reply = {};
      try { reply = JSON.parse(xhr.responseText); } catch (e) { reply = {error: xhr.statusText}; }
      if (xhr.status !== 200) {
        const retry = xhr.getResponseHeader("Retry-After");
        $("status").textContent = "";
        fail(reply.error + (retry ? " (in about " + retry + " s)" : ""));
        return;
      }
      $("bar").removeAttribute("value");
      poll(reply.job);
    };
    xhr.onerror = function () { fail("upload failed"); };
    xhr.send(file);
  });

  $("slider").addEventListener("input", function () {
    document.querySelector(".compare .after").style.clipPath = "inset(0 0 0 " + this.value + "%)";
  });
})();
