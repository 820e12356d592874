// The console's one script. It exists for the API key: entered once per tab, kept in
// sessionStorage, sent with fetch as the bearer key (never in an address). Each console
// page asks the server for its content (/console/fragments/… for /console/…), rendered
// there for the key's role, and shows it; a form marked data-post (an admin's re-drive)
// is sent the same way.
"use strict";

const STORAGE = "lifecycle-console-key";
const page = document.getElementById("page");
const keyForm = document.getElementById("key-form");
const keyInput = document.getElementById("api-key");
const keyMessage = document.getElementById("key-message");
const who = document.getElementById("who");
const forgetKey = document.getElementById("forget-key");

function fragmentAddress(path, search) {
  return "/console/fragments" + path.slice("/console".length) + search;
}

function askForKey(message) {
  keyForm.hidden = false;
  forgetKey.hidden = true;
  who.textContent = "";
  keyMessage.textContent = message || "";
  page.replaceChildren();
  page.setAttribute("aria-busy", "false");
  keyInput.focus();
}

function showRefusal(text) {
  const paragraph = document.createElement("p");
  paragraph.className = "refused";
  paragraph.id = "refused";
  paragraph.textContent = text;
  page.replaceChildren(paragraph);
}

async function show(method, path, search) {
  const key = sessionStorage.getItem(STORAGE);
  if (!key) {
    askForKey();
    return;
  }
  keyForm.hidden = true;
  forgetKey.hidden = false;
  page.setAttribute("aria-busy", "true");
  let response;
  try {
    response = await fetch(fragmentAddress(path, search), {
      method: method,
      headers: { Authorization: "Bearer " + key },
      cache: "no-store",
    });
  } catch (error) {
    showRefusal("The engine did not answer: " + error.message);
    page.setAttribute("aria-busy", "false");
    return;
  }
  if (response.status === 401) {
    sessionStorage.removeItem(STORAGE);
    askForKey("That key was not accepted: enter another.");
    return;
  }
  const role = response.headers.get("X-Console-Role");
  who.textContent = role ? "Signed in as " + role : "";
  if ((response.headers.get("Content-Type") || "").startsWith("text/html")) {
    page.innerHTML = await response.text(); // rendered and escaped by the server
  } else {
    const body = await response.json().catch(() => ({}));
    showRefusal(body.message || "The engine answered " + response.status + ".");
  }
  page.setAttribute("aria-busy", "false");
  const heading = page.querySelector("h1");
  if (heading) {
    heading.tabIndex = -1;
    heading.focus();
  }
}

function showThisPage() {
  show("GET", location.pathname, location.search);
}

page.addEventListener("submit", (event) => {
  const form = event.target;
  if (!form.hasAttribute("data-post")) {
    return; // an ordinary GET form: the browser goes to the page it names
  }
  event.preventDefault();
  const query = new URLSearchParams(new FormData(form)).toString();
  show("POST", new URL(form.action).pathname, "?" + query);
});

keyForm.addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(STORAGE, keyInput.value.trim());
  keyInput.value = "";
  showThisPage();
});

forgetKey.addEventListener("click", () => {
  sessionStorage.removeItem(STORAGE);
  askForKey("The key is forgotten.");
});

showThisPage();
