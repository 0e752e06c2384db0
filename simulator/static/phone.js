// The phone simulator page: pick a demo citizen and a channel, chat, press the bot's buttons,
// link the account, run a simulated day's reminders. Talks only to /sim/* on this server.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const els = {
    citizen: $("citizen"),
    channel: $("channel"),
    link: $("link"),
    text: $("text"),
    send: $("send"),
    composer: $("composer"),
    messages: $("messages"),
    dues: $("dues"),
    identity: $("identity"),
    runDate: $("run-date"),
    runDay: $("run-day"),
    status: $("status"),
    chatTitle: $("chat-title"),
  };
  const CHANNEL_NAMES = { zalo: "Zalo", telegram: "Telegram", sms: "SMS" };
  const state = { citizens: [], after: 0, generation: 0, polling: false };

  function setStatus(text, isError) {
    els.status.textContent = text || "";
    els.status.classList.toggle("error", Boolean(isError));
  }

  async function api(path, body) {
    const options = body === undefined ? {} : {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    };
    const response = await fetch(path, options);
    let data = null;
    try {
      data = await response.json();
    } catch (_) {
      data = null;
    }
    if (!response.ok) {
      throw new Error((data && data.error) || "Lỗi " + response.status);
    }
    return data;
  }

  function current() {
    return {
      citizen_id: Number(els.citizen.value),
      channel: els.channel.value,
    };
  }

  function selectedCitizen() {
    const id = Number(els.citizen.value);
    return state.citizens.find((c) => c.id === id) || null;
  }

  function formatDate(iso) {
    const [y, m, d] = iso.split("-");
    return d + "/" + m + "/" + y;
  }

  function describe() {
    const c = selectedCitizen();
    const channel = els.channel.value;
    document.body.className = "channel-" + channel;
    els.chatTitle.textContent = "Trợ lý dịch vụ công · " + CHANNEL_NAMES[channel];
    if (!c) {
      els.dues.textContent = "";
      els.identity.textContent = "";
      return;
    }
    els.dues.textContent = c.dues.length
      ? "Sắp đến hạn: " + c.dues.map((d) => d.name + " (" + formatDate(d.deadline) + ")").join("; ")
      : "Không có thủ tục sắp đến hạn.";
    const who = {
      zalo: "Zalo user id " + c.zalo_user_id,
      telegram: "Telegram chat id " + c.telegram_chat_id,
      sms: "Số điện thoại " + c.phone,
    }[channel];
    els.identity.textContent = "Định danh " + c.cccd + " · " + who;
    els.link.disabled = channel === "sms";
    els.link.title = channel === "sms" ? "SMS không cần liên kết: nhận diện theo số gửi" : "";
  }

  function timeOf(seconds) {
    const d = new Date(seconds * 1000);
    return d.toLocaleTimeString("vi-VN", { hour: "2-digit", minute: "2-digit" });
  }

  function render(message) {
    const bubble = document.createElement("div");
    bubble.className = "bubble " + (message.from === "me" ? "me" : "bot");
    if (message.channel === "zns") bubble.classList.add("template");
    bubble.dataset.id = String(message.id);
    if (message.text) {
      const text = document.createElement("span");
      text.className = "text";
      text.textContent = message.text;
      bubble.appendChild(text);
    }
    if (message.image) {
      if (message.image.startsWith("/sim/image/")) {
        const img = document.createElement("img");
        img.src = message.image;
        img.alt = "Hình ảnh trợ lý gửi";
        bubble.appendChild(img);
      } else {
        const note = document.createElement("span");
        note.textContent = "\n[Hình ảnh: " + message.image + "]";
        bubble.appendChild(note);
      }
    }
    if (message.choices && message.choices.length) {
      const box = document.createElement("div");
      box.className = "choices";
      for (const choice of message.choices) {
        if (choice.kind === "url") {
          const span = document.createElement("span");
          span.className = "link-choice";
          span.textContent = choice.title + " ↗";
          box.appendChild(span);
          continue;
        }
        const button = document.createElement("button");
        button.type = "button";
        button.className = "choice";
        button.textContent = choice.title;
        button.addEventListener("click", () =>
          send({ button: { message: message.id, index: choice.index } }),
        );
        box.appendChild(button);
      }
      bubble.appendChild(box);
    }
    const time = document.createElement("span");
    time.className = "time";
    time.textContent = timeOf(message.at);
    bubble.appendChild(time);
    els.messages.appendChild(bubble);
  }

  async function poll() {
    if (state.polling || !els.citizen.value) return;
    state.polling = true;
    const generation = state.generation;
    const { citizen_id, channel } = current();
    try {
      const query = new URLSearchParams({ citizen_id, channel, after: state.after });
      const data = await api("/sim/messages?" + query.toString());
      if (generation !== state.generation) return;
      const atBottom =
        els.messages.scrollHeight - els.messages.scrollTop - els.messages.clientHeight < 40;
      for (const message of data.messages) {
        if (message.id > state.after) {
          render(message);
          state.after = message.id;
        }
      }
      if (data.messages.length && atBottom) els.messages.scrollTop = els.messages.scrollHeight;
    } catch (error) {
      setStatus(error.message, true);
    } finally {
      state.polling = false;
    }
  }

  function resetConversation() {
    state.generation += 1;
    state.after = 0;
    state.polling = false;
    els.messages.textContent = "";
    describe();
    poll();
  }

  async function send(extra) {
    try {
      await api("/sim/send", Object.assign(current(), extra));
      setStatus("");
      await poll();
    } catch (error) {
      setStatus(error.message, true);
    }
  }

  async function busy(button, work) {
    button.disabled = true;
    try {
      await work();
    } catch (error) {
      setStatus(error.message, true);
    } finally {
      button.disabled = button === els.link && els.channel.value === "sms";
    }
  }

  els.composer.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = els.text.value.trim();
    if (!text) return;
    els.text.value = "";
    send({ text });
  });

  els.link.addEventListener("click", () =>
    busy(els.link, async () => {
      setStatus("Đang liên kết: gửi số định danh, chờ SMS mã xác thực…");
      const result = await api("/sim/link", current());
      const lines = {
        linked: "Đã liên kết (mã " + result.code + " lấy từ SMS).",
        already_linked: "Tài khoản đã được liên kết trên kênh này.",
        not_needed: result.message,
        no_code: "Không nhận được mã xác thực.",
        not_linked: "Chưa liên kết được.",
      };
      const detail = result.status === "not_needed" ? "" : "\n" + (result.message || "");
      setStatus((lines[result.status] || result.status) + detail, result.status === "no_code");
      await poll();
    }),
  );

  els.runDay.addEventListener("click", () =>
    busy(els.runDay, async () => {
      if (!els.runDate.value) throw new Error("Ông/Bà chọn ngày trước.");
      setStatus("Đang chạy quét và gửi nhắc việc cho ngày " + formatDate(els.runDate.value) + "…");
      const r = await api("/sim/run-day", { date: els.runDate.value });
      const n = r.reminders;
      let text =
        "Ngày " + formatDate(r.date) + ": tạo " + r.created + " nhắc việc; đã gửi " + n.sent +
        ", bỏ qua " + n.skipped + ", để ngày sau " + n.deferred + ", chờ " + n.waiting +
        ", lỗi " + n.failed + "; thông báo hồ sơ " + r.status_notices +
        ", lệ phí " + r.payment_notices + ".";
      if (r.errors.length) text += "\n" + r.errors.join("\n");
      setStatus(text, n.failed > 0 || n.waiting > 0);
      await poll();
    }),
  );

  els.citizen.addEventListener("change", resetConversation);
  els.channel.addEventListener("change", resetConversation);

  async function start() {
    const now = new Date();
    const pad = (n) => String(n).padStart(2, "0");
    els.runDate.value = now.getFullYear() + "-" + pad(now.getMonth() + 1) + "-" + pad(now.getDate());
    try {
      const data = await api("/sim/citizens");
      state.citizens = data.citizens;
      for (const c of data.citizens) {
        const option = document.createElement("option");
        option.value = String(c.id);
        option.textContent = c.name + " · " + c.cccd + " · " + c.phone;
        els.citizen.appendChild(option);
      }
      if (!data.citizens.length) {
        setStatus("Chưa có công dân mẫu: chạy python -m bot seed --citizens 1000.", true);
      }
    } catch (error) {
      setStatus(error.message, true);
    }
    resetConversation();
    setInterval(poll, 1000);
  }

  start();
})();
