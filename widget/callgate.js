/*! callgate call widget: a call button that places a WebRTC call through a
 * callgate node.
 *
 * Embed with ONE tag (the node serves this file at /widget/callgate.js):
 *
 *   <script src="https://node.example/widget/callgate.js"
 *           data-widget="WIDGET_ID" async></script>
 *
 * Attributes of that tag:
 *   data-widget   the widget id (required)
 *   data-target   CSS selector of the element to render into; default: right
 *                 after the script element
 *   data-codecs   comma list of opus, pcmu, pcma: offer only those, in that
 *                 order (telephone-event is always kept); default: the
 *                 browser's own order
 *   data-demo     demo pages only: the PAGE URL's `cg-codecs` (or `codecs`)
 *                 query parameter overrides data-codecs, so /demo?cg-codecs=pcmu
 *                 tries another codec without editing the page
 *
 * Plain ES2020, no build step, no dependencies, no eval, no inline style
 * attributes: styles go into one constructed stylesheet (or, in browsers
 * without constructable stylesheets, one <style> element), every class name
 * starts with `cg-`.
 *
 * Signalling: GET /v1/widgets/{id}/config, POST /v1/widgets/{id}/calls with
 * the offer right after setLocalDescription (the node is ICE-lite and needs
 * none of our candidates), then the events WebSocket the answer names;
 * DELETE /v1/calls/{call_id}?token=T on page hide or when the socket is not
 * open. Nothing is sent to the node before the microphone is granted.
 *
 * Consent: the config says whether the number records. For `opt_in` the
 * notice and an unticked allow-recording choice appear as the call is placed
 * (nothing is recorded unless ticked). For `notice` the first press of Call
 * only shows the notice and a ticked choice (recorded unless unticked); the
 * second press calls. The choice goes with the call request and, changed
 * later, over the events socket; the "being recorded" line follows what the
 * node reports.
 *
 * Quality: while the node reports a quality warning (high-rtt, high-jitter,
 * high-loss, low-mos), a "poor connection" line is shown and announced
 * politely to screen readers; it goes when the last warning clears.
 *
 * Test hooks (stable, harmless): the root element has class `cg-widget`, a
 * `data-state` attribute (idle | connecting | ringing | answered | ended |
 * error), `data-reason` once a call ended or failed, `data-privacy-ref`
 * once a placed call ended, `data-quality` (the active quality warnings,
 * space-separated) while any is, and a property `element.callgate = { pc,
 * callId, eventsUrl, privacyRef, state, reason, warnings, start(), hangup(),
 * sendDtmf(digits) }`.
 *
 * When a placed call ends, the widget shows its privacy reference: the
 * visitor quotes it to ask the site for a copy or an erasure of what is
 * held about the call. Remote audio plays through the <audio> element inside
 * the widget.
 */
(() => {
  'use strict';

  const SCRIPT_PATH = 'widget/callgate.js';
  const DTMF_KEYS = ['1', '2', '3', '4', '5', '6', '7', '8', '9', '*', '0', '#'];
  const CODEC_MIME = { opus: 'audio/opus', pcmu: 'audio/pcmu', pcma: 'audio/pcma' };
  const ACTIVE = ['connecting', 'ringing', 'answered'];
  const QUALITY_WARNINGS = ['high-rtt', 'high-jitter', 'high-loss', 'low-mos'];
  /**
   * How long a failed connection waits for the node's own word on the call:
   * the node closes DTLS as soon as a call ends, and the browser may see
   * that close before the events socket brings the reason (busy, no answer).
   */
  const FAILED_GRACE_MS = 1500;

  const TEXT = {
    idle: 'Ready to call.',
    connecting: 'Connecting\u2026',
    ringing: 'Ringing\u2026',
    answered: 'In call',
    recording: 'This call is being recorded.',
    poorConnection: 'Poor connection: the call may break up or lag.',
    allowRecording: 'Allow this call to be recorded',
    noticeFirst: 'Please read the recording notice above, then press Call.',
    defaultNotice: 'Calls to this number can be recorded.',
  };

  /** What the status line says when a call ends, per reason. */
  const ENDED = {
    completed: 'The call has ended.',
    busy: 'The line is busy. Please try again later.',
    no_answer: 'No one answered the call.',
    rejected: 'The call was declined.',
    failed: 'The call could not be connected.',
    unreachable: 'Could not connect: the line cannot be reached right now.',
    cancelled: 'The call was cancelled.',
    disconnected: 'Call ended.',
  };

  /** What the status line says when a call cannot start, per reason. */
  const ERRORS = {
    mic_denied: 'Microphone access was refused. Allow the microphone for this site, then call again.',
    no_mic: 'No microphone was found. Connect a microphone, then call again.',
    mic_busy: 'The microphone could not be started. Close other apps using it, then call again.',
    unsupported: 'This browser cannot place calls (it needs WebRTC on a secure https page).',
    network: 'Could not reach the call service. Check your connection and try again.',
    bad_request: 'The call could not be set up by this browser.',
    forbidden: 'Calls are not enabled for this website.',
    not_found: 'This call button is not set up correctly.',
    rate_limited: 'Too many calls right now. Please try again later.',
    unavailable: 'The call service is busy. Please try again in a moment.',
    server: 'The call service had a problem. Please try again later.',
  };

  const CSS = `
.cg-widget{font:16px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1c1c1c;
  background:#fff;border:1px solid #c9ccd1;border-radius:12px;padding:16px;max-width:320px;box-sizing:border-box}
.cg-widget *{box-sizing:border-box}
.cg-widget [hidden]{display:none!important}
.cg-widget .cg-line{display:flex;align-items:baseline;gap:.5em;margin:0 0 12px;min-height:1.4em}
.cg-widget .cg-status{margin:0;font-weight:600}
.cg-widget .cg-timer{font-variant-numeric:tabular-nums}
.cg-widget .cg-controls{display:flex;gap:8px;flex-wrap:wrap}
.cg-widget button{font:inherit;cursor:pointer;border-radius:8px;border:1px solid #8a8f98;
  background:#f4f5f7;color:#1c1c1c;padding:8px 14px;min-height:44px}
.cg-widget button:hover{background:#e6e8eb}
.cg-widget button:focus-visible{outline:3px solid #1a5fb4;outline-offset:2px}
.cg-widget .cg-call{background:#1e7d32;border-color:#1e7d32;color:#fff}
.cg-widget .cg-call:hover{background:#166326}
.cg-widget .cg-hangup{background:#b3261e;border-color:#b3261e;color:#fff}
.cg-widget .cg-hangup:hover{background:#8c1d18}
.cg-widget .cg-mute[aria-pressed="true"]{background:#4a4f57;border-color:#4a4f57;color:#fff}
.cg-widget .cg-keypad{display:grid;grid-template-columns:repeat(3,1fr);gap:6px;margin-top:12px}
.cg-widget .cg-keypad button{font-size:1.2em;padding:6px}
.cg-widget .cg-keypad .cg-pressed{background:#c9d7ee}
.cg-widget .cg-digits{margin:8px 0 0;min-height:1.4em;font-variant-numeric:tabular-nums;letter-spacing:.1em}
.cg-widget .cg-recording{margin:12px 0 0;color:#b3261e;font-weight:600}
.cg-widget .cg-quality{margin:12px 0 0;color:#7a4d00;font-weight:600}
.cg-widget .cg-privacy{margin:12px 0 0;font-size:13px;color:#444}
.cg-widget .cg-consent:empty{display:none}
.cg-widget .cg-notice{margin:0 0 6px;font-size:.9em}
.cg-widget .cg-consent-choice{display:block;margin:0 0 10px}
`;

  // ------------------------------------------------------------ bootstrap

  function ownScripts() {
    if (document.currentScript && document.currentScript.hasAttribute('data-widget')) {
      return [document.currentScript];
    }
    // Async and deferred scripts may run without currentScript: take every
    // tag loading this file that is not set up yet.
    return Array.from(document.querySelectorAll('script[data-widget]')).filter(
      (s) => s.src && new URL(s.src, document.baseURI).pathname.endsWith('/' + SCRIPT_PATH),
    );
  }

  function boot() {
    for (const script of ownScripts()) {
      if (script.callgateWidget) continue;
      script.callgateWidget = true;
      whenTargetReady(script, (host, after) => {
        const widget = new Widget(script);
        if (after) after.insertAdjacentElement('afterend', widget.root);
        else host.appendChild(widget.root);
      });
    }
  }

  /** Calls back with (container) or (null, elementToFollow) once it exists. */
  function whenTargetReady(script, place) {
    const selector = script.getAttribute('data-target');
    const find = () => {
      if (selector) {
        const host = document.querySelector(selector);
        return host ? () => place(host, null) : null;
      }
      if (script.parentNode && script.parentNode !== document.head) {
        return () => place(null, script);
      }
      return document.body ? () => place(document.body, null) : null;
    };
    const now = find();
    if (now) return now();
    document.addEventListener('DOMContentLoaded', () => {
      const later = find();
      if (later) later();
      else console.warn('callgate: data-target ' + selector + ' not found');
    });
  }

  function installStyles() {
    const marker = 'callgateWidgetStyles';
    if ('adoptedStyleSheets' in document && typeof CSSStyleSheet === 'function') {
      try {
        if (document.adoptedStyleSheets.some((s) => s[marker])) return;
        const sheet = new CSSStyleSheet();
        sheet.replaceSync(CSS);
        sheet[marker] = true;
        document.adoptedStyleSheets = [...document.adoptedStyleSheets, sheet];
        return;
      } catch (_) {
        // Fall through to a <style> element.
      }
    }
    if (document.querySelector('style[data-cg-styles]')) return;
    const style = document.createElement('style');
    style.setAttribute('data-cg-styles', '');
    style.textContent = CSS;
    (document.head || document.documentElement).appendChild(style);
  }

  // ------------------------------------------------------------- settings

  function readSettings(script) {
    const src = new URL(script.src, document.baseURI);
    let codecs = script.getAttribute('data-codecs') || '';
    if (script.hasAttribute('data-demo')) {
      const query = new URLSearchParams(window.location.search);
      codecs = query.get('cg-codecs') || query.get('codecs') || codecs;
    }
    return {
      // The node's base URL: the script lives at <base>/widget/callgate.js.
      base: new URL('../', src).href,
      widget: script.getAttribute('data-widget') || '',
      codecs: parseCodecs(codecs),
    };
  }

  /** The HTTP base (`https://host/`) of the node an events URL names. */
  function nodeBaseOf(eventsUrl) {
    try {
      const url = new URL(eventsUrl);
      url.protocol = url.protocol === 'wss:' ? 'https:' : 'http:';
      return url.origin + '/';
    } catch (e) {
      return null;
    }
  }

  function parseCodecs(list) {
    const names = [];
    for (const raw of list.split(',')) {
      const name = raw.trim().toLowerCase();
      if (!name) continue;
      if (CODEC_MIME[name]) {
        if (!names.includes(name)) names.push(name);
      } else {
        console.warn('callgate: unknown codec in data-codecs: ' + name);
      }
    }
    return names;
  }

  /** The browser's audio codecs restricted to `names`, in that order, plus
   * telephone-event (DTMF) wherever the browser offers it; null when the
   * browser cannot do this or offers none of the names. */
  function preferredCodecs(names) {
    const caps = window.RTCRtpReceiver && RTCRtpReceiver.getCapabilities
      ? RTCRtpReceiver.getCapabilities('audio') : null;
    if (!names.length || !caps) return null;
    const all = caps.codecs;
    const chosen = [];
    for (const name of names) {
      chosen.push(...all.filter((c) => c.mimeType.toLowerCase() === CODEC_MIME[name]));
    }
    if (!chosen.length) {
      console.warn('callgate: none of the codecs ' + names.join(',') + ' is available');
      return null;
    }
    return chosen.concat(all.filter((c) => c.mimeType.toLowerCase() === 'audio/telephone-event'));
  }

  // ------------------------------------------------------------------ DOM

  function el(tag, className, attrs, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, value);
    if (text) node.textContent = text;
    return node;
  }

  function button(className, label, text) {
    return el('button', className, { type: 'button', 'aria-label': label }, text);
  }

  function digitLabel(digit) {
    if (digit === '*') return 'Star';
    if (digit === '#') return 'Pound';
    return 'Digit ' + digit;
  }

  function formatDuration(ms) {
    const total = Math.max(0, Math.floor(ms / 1000));
    const minutes = String(Math.floor(total / 60)).padStart(2, '0');
    return minutes + ':' + String(total % 60).padStart(2, '0');
  }

  function isTypingInto(target) {
    if (!target || !target.tagName) return false;
    const tag = target.tagName.toLowerCase();
    return tag === 'input' || tag === 'textarea' || tag === 'select' || target.isContentEditable;
  }

  // --------------------------------------------------------------- widget

  class Widget {
    constructor(script) {
      this.settings = readSettings(script);
      this.state = 'idle';
      this.reason = null;
      this.call = null;
      installStyles();
      this.render();
      this.setState('idle');
      this.listen();
    }

    render() {
      const root = el('div', 'cg-widget', { role: 'group', 'aria-label': 'Call us' });
      // The timer sits outside the live status line, so that screen
      // readers announce state changes, not every second.
      const line = el('div', 'cg-line');
      this.statusText = el('p', 'cg-status', { role: 'status', 'aria-live': 'polite' });
      this.timer = el('span', 'cg-timer', { role: 'timer', 'aria-label': 'Call duration' });
      line.append(this.statusText, this.timer);
      // Filled by loadConsent() when the number records calls: the notice
      // and the visitor's choice, shown before the call and kept during it.
      this.consent = el('div', 'cg-consent', { 'data-slot': 'consent' });
      this.policy = 'off';
      this.consentBox = null;
      this.callButton = button('cg-call', 'Start a call', 'Call');
      this.hangupButton = button('cg-hangup', 'Hang up', 'Hang up');
      this.muteButton = button('cg-mute', 'Mute microphone', 'Mute');
      this.muteButton.setAttribute('aria-pressed', 'false');
      const controls = el('div', 'cg-controls');
      controls.append(this.callButton, this.hangupButton, this.muteButton);
      this.keypad = el('div', 'cg-keypad', { role: 'group', 'aria-label': 'Keypad' });
      this.keys = {};
      for (const digit of DTMF_KEYS) {
        const key = button('cg-key', digitLabel(digit), digit);
        key.setAttribute('data-digit', digit);
        this.keys[digit] = key;
        this.keypad.appendChild(key);
      }
      this.digits = el('p', 'cg-digits');
      this.sent = '';
      this.recording = el('p', 'cg-recording', { role: 'status', 'aria-live': 'polite' });
      this.quality = el('p', 'cg-quality', { role: 'status', 'aria-live': 'polite' });
      this.quality.hidden = true;
      this.warnings = new Set();
      this.privacy = el('p', 'cg-privacy');
      this.privacy.hidden = true;
      this.audio = el('audio', 'cg-audio', { autoplay: '' });
      this.audio.autoplay = true;
      root.append(this.consent, line, controls, this.keypad, this.digits, this.recording,
        this.quality, this.privacy, this.audio);
      root.callgate = this.hooks();
      this.root = root;
    }

    hooks() {
      const widget = this;
      return {
        get pc() { return widget.call ? widget.call.pc : null; },
        get callId() { return widget.call ? widget.call.callId : null; },
        get eventsUrl() { return widget.call && widget.call.ws ? widget.call.ws.url : null; },
        get privacyRef() { return widget.call ? widget.call.privacyRef : null; },
        get state() { return widget.state; },
        get reason() { return widget.reason; },
        get warnings() { return Array.from(widget.warnings); },
        start: () => widget.start(),
        hangup: () => widget.hangup(),
        sendDtmf: (digits) => widget.sendDtmf(digits),
      };
    }

    listen() {
      this.callButton.addEventListener('click', () => this.start());
      this.hangupButton.addEventListener('click', () => this.hangup());
      this.muteButton.addEventListener('click', () => this.toggleMute());
      this.keypad.addEventListener('click', (event) => {
        const key = event.target.closest('[data-digit]');
        if (key) this.sendDtmf(key.getAttribute('data-digit'));
      });
      document.addEventListener('keydown', (event) => this.onKey(event));
      window.addEventListener('pagehide', () => this.onPageHide());
    }

    onKey(event) {
      if (this.state !== 'answered' || event.ctrlKey || event.metaKey || event.altKey) return;
      if (!DTMF_KEYS.includes(event.key) || isTypingInto(event.target)) return;
      event.preventDefault();
      this.sendDtmf(event.key);
    }

    // ---------------------------------------------------------- states

    setState(state, reason) {
      this.state = state;
      this.reason = reason || null;
      const root = this.root;
      root.setAttribute('data-state', state);
      if (reason) root.setAttribute('data-reason', reason);
      else root.removeAttribute('data-reason');
      const active = ACTIVE.includes(state);
      this.callButton.hidden = active;
      this.callButton.textContent = state === 'idle' ? 'Call' : 'Call again';
      this.hangupButton.hidden = !active;
      this.muteButton.hidden = !active;
      this.keypad.hidden = state !== 'answered';
      this.digits.hidden = state !== 'answered';
      if (!active) {
        this.showRecording(false);
        this.showQuality(null, false);
      }
      this.statusText.textContent = this.describe(state, reason);
      if (state === 'answered') this.startTimer();
      else if (state !== 'ended') this.timer.textContent = '';
      if (state !== 'answered') this.stopTimer();
    }

    describe(state, reason) {
      if (state === 'idle' && reason === 'notice') return TEXT.noticeFirst;
      if (state === 'ended') return ENDED[reason] || ENDED.disconnected;
      if (state === 'error') return ERRORS[reason] || ERRORS.server;
      return TEXT[state];
    }

    startTimer() {
      const since = Date.now();
      this.timer.textContent = formatDuration(0);
      this.stopTimer();
      this.ticker = setInterval(() => {
        this.timer.textContent = formatDuration(Date.now() - since);
      }, 1000);
    }

    stopTimer() {
      if (this.ticker) clearInterval(this.ticker);
      this.ticker = null;
    }

    /** Shows the number's notice and the allow-recording choice unless it
     * does not record: unticked for `opt_in` (recorded only if ticked),
     * ticked for `notice` (recorded unless unticked). The choice can change
     * during the call. A number that stopped recording since the last call
     * loses its notice and choice. */
    applyConsentConfig(config) {
      const policy = config && config.recording;
      if (policy !== 'opt_in' && policy !== 'notice') {
        this.policy = 'off';
        this.consentBox = null;
        this.noticeShown = false;
        this.consent.textContent = '';
        return;
      }
      if (this.policy === policy) return;
      this.policy = policy;
      this.consent.textContent = '';
      const notice = el('p', 'cg-notice');
      notice.textContent = config.notice || TEXT.defaultNotice;
      const label = el('label', 'cg-consent-choice');
      this.consentBox = el('input', 'cg-consent-box', { type: 'checkbox' });
      this.consentBox.checked = policy === 'notice';
      this.consentBox.addEventListener('change', () => this.onConsentChange());
      label.append(this.consentBox, document.createTextNode(' ' + TEXT.allowRecording));
      this.consent.append(notice, label);
    }

    /** The choice for the call request: granted, declined or none. */
    consentChoice() {
      if (!this.consentBox) return null;
      if (this.consentBox.checked) return 'granted';
      return this.policy === 'notice' ? 'declined' : null;
    }

    onConsentChange() {
      const call = this.call;
      if (!call || call.over || !call.ws || call.ws.readyState !== WebSocket.OPEN) return;
      this.sendConsent(call);
    }

    /** Tells the node the current choice if it is not what it last heard. */
    sendConsent(call) {
      const granted = this.consentBox ? this.consentBox.checked : false;
      if (granted === call.consentGranted) return;
      call.consentGranted = granted;
      call.ws.send(JSON.stringify({ type: 'consent', value: granted ? 'granted' : 'revoked' }));
    }

    showRecording(active) {
      this.recording.textContent = active ? TEXT.recording : '';
      this.recording.hidden = !active;
    }

    /** Follows one warning (`null` clears them all); the hint shows while
     * any is active. */
    showQuality(warning, active) {
      if (warning === null) this.warnings.clear();
      else if (active) this.warnings.add(warning);
      else this.warnings.delete(warning);
      const poor = this.warnings.size > 0;
      if (poor) this.root.setAttribute('data-quality', Array.from(this.warnings).join(' '));
      else this.root.removeAttribute('data-quality');
      // Only a change is written, so a screen reader announces it once.
      if (poor === this.quality.hidden) {
        this.quality.textContent = poor ? TEXT.poorConnection : '';
        this.quality.hidden = !poor;
      }
    }

    // ---------------------------------------------------------- a call

    async start() {
      if (ACTIVE.includes(this.state)) return;
      const call = {
        pc: null, stream: null, callId: null, token: null, privacyRef: null, ws: null, over: false,
      };
      this.call = call;
      this.sent = '';
      this.digits.textContent = '';
      this.setMuted(false);
      this.showPrivacyRef(null);
      this.setState('connecting');
      try {
        call.stream = await this.microphone();
        if (call.over) return this.release(call);
        this.setMuted(this.muteButton.getAttribute('aria-pressed') === 'true');
        const config = await this.request('GET', 'v1/widgets/' + this.widgetPath() + '/config');
        if (call.over) return this.release(call);
        this.applyConsentConfig(config);
        if (this.policy === 'notice' && !this.noticeShown) {
          // A notice number records from the answer: the visitor reads the
          // notice (and may untick) before the call, then presses Call again.
          this.noticeShown = true;
          call.over = true;
          this.release(call);
          this.setState('idle', 'notice');
          return;
        }
        await this.connect(call, config);
      } catch (failure) {
        this.fail(call, failure);
      }
    }

    widgetPath() {
      return encodeURIComponent(this.settings.widget);
    }

    async microphone() {
      const media = navigator.mediaDevices;
      if (!media || !media.getUserMedia || !window.RTCPeerConnection) throw callError('unsupported');
      try {
        const stream = await media.getUserMedia({ audio: true, video: false });
        if (!stream.getAudioTracks().length) throw callError('no_mic');
        return stream;
      } catch (error) {
        if (error && error.callgateReason) throw error;
        const name = error && error.name;
        if (name === 'NotAllowedError' || name === 'SecurityError') throw callError('mic_denied');
        if (name === 'NotFoundError' || name === 'OverconstrainedError') throw callError('no_mic');
        throw callError('mic_busy');
      }
    }

    async connect(call, config) {
      const pc = new RTCPeerConnection({ iceServers: iceServers(config) });
      call.pc = pc;
      pc.addEventListener('track', (event) => {
        this.audio.srcObject = event.streams[0] || new MediaStream([event.track]);
      });
      pc.addEventListener('connectionstatechange', () => {
        if (pc.connectionState !== 'failed') return;
        setTimeout(() => {
          if (this.call === call && !call.over) this.finish(call, 'failed');
        }, FAILED_GRACE_MS);
      });
      const track = call.stream.getAudioTracks()[0];
      const transceiver = pc.addTransceiver(track, { direction: 'sendrecv', streams: [call.stream] });
      const codecs = preferredCodecs(this.settings.codecs);
      if (codecs && transceiver.setCodecPreferences) transceiver.setCodecPreferences(codecs);
      await pc.setLocalDescription(await pc.createOffer());
      const consent = this.consentChoice();
      call.consentGranted = consent === 'granted';
      const answer = await this.request('POST', 'v1/widgets/' + this.widgetPath() + '/calls', {
        offer: pc.localDescription.sdp,
        consent,
      });
      call.callId = answer.call_id;
      call.token = answer.token;
      call.nodeBase = nodeBaseOf(answer.events);
      call.privacyRef = answer.privacy_ref || null;
      if (call.over) return this.deleteCall(call);
      await pc.setRemoteDescription({ type: 'answer', sdp: answer.answer });
      this.openEvents(call, answer.events);
    }

    openEvents(call, url) {
      const ws = new WebSocket(url);
      call.ws = ws;
      ws.addEventListener('message', (event) => this.onEvent(call, event.data));
      // The choice may have changed while the call was being placed.
      ws.addEventListener('open', () => {
        if (this.call === call && !call.over && this.consentBox) this.sendConsent(call);
      });
      ws.addEventListener('close', () => {
        if (this.call === call && !call.over) this.finish(call, 'disconnected');
      });
    }

    onEvent(call, data) {
      if (this.call !== call || call.over) return;
      let event;
      try {
        event = JSON.parse(data);
      } catch (_) {
        return;
      }
      if (event.type === 'recording') {
        this.showRecording(event.active === true);
      } else if (event.type === 'quality' && QUALITY_WARNINGS.includes(event.warning)) {
        this.showQuality(event.warning, event.active === true);
      } else if (event.type === 'state') {
        if (event.state === 'ringing' && this.state === 'connecting') this.setState('ringing');
        else if (event.state === 'answered' && this.state !== 'answered') this.setState('answered');
        else if (event.state === 'ended') this.finish(call, event.reason || 'disconnected', true);
      }
    }

    /** Hangs up: over the socket when open, else by DELETE; a call whose
     * POST is still in flight is deleted as soon as its id is known. */
    hangup() {
      const call = this.call;
      if (!call || call.over || !ACTIVE.includes(this.state)) return;
      this.finish(call, this.state === 'answered' ? 'completed' : 'cancelled');
    }

    /** Ends `call` locally with `reason`; tells the node unless it told us. */
    finish(call, reason, byNode) {
      if (call.over) return;
      call.over = true;
      if (!byNode) this.tellNodeHangup(call);
      else if (call.ws) call.ws.close();
      this.release(call);
      this.setState('ended', reason);
      this.showPrivacyRef(call.privacyRef);
    }

    /** Shows the ended call's privacy reference (none for a call never placed). */
    showPrivacyRef(reference) {
      this.privacy.hidden = !reference;
      this.privacy.textContent = reference ? 'Privacy reference for this call: ' + reference : '';
      if (reference) this.root.setAttribute('data-privacy-ref', reference);
      else this.root.removeAttribute('data-privacy-ref');
    }

    tellNodeHangup(call) {
      const ws = call.ws;
      if (ws && ws.readyState === WebSocket.OPEN) {
        ws.send(JSON.stringify({ type: 'hangup' }));
        ws.close();
      } else {
        if (ws) ws.close();
        this.deleteCall(call);
      }
    }

    deleteCall(call) {
      if (!call.callId) return;
      const path = 'v1/calls/' + encodeURIComponent(call.callId) +
        '?token=' + encodeURIComponent(call.token || '');
      // The node that holds the call: in a cluster, not always the one
      // the widget asked.
      const url = call.nodeBase ? new URL(path, call.nodeBase).href : this.url(path);
      fetch(url, { method: 'DELETE', keepalive: true, mode: 'cors', credentials: 'omit' })
        .catch(() => {});
    }

    release(call) {
      if (call.stream) call.stream.getTracks().forEach((t) => t.stop());
      if (call.pc) call.pc.close();
      this.audio.srcObject = null;
    }

    fail(call, failure) {
      const reason = (failure && failure.callgateReason) || 'server';
      if (!(failure && failure.callgateReason)) console.warn('callgate: call failed', failure);
      if (call.over) return;
      call.over = true;
      this.tellNodeHangup(call);
      this.release(call);
      this.setState('error', reason);
      if (failure && failure.retryAfter) {
        this.statusText.textContent = 'Too many calls right now. Please try again in ' +
          failure.retryAfter + ' seconds.';
      }
    }

    onPageHide() {
      const call = this.call;
      if (!call || call.over) return;
      call.over = true;
      if (call.ws && call.ws.readyState === WebSocket.OPEN) {
        call.ws.send(JSON.stringify({ type: 'hangup' }));
      }
      this.deleteCall(call);
      this.release(call);
      // Seen again only if the page comes back from the back/forward cache.
      this.setState('ended', 'cancelled');
    }

    // ------------------------------------------------- in-call controls

    sendDtmf(digits) {
      const call = this.call;
      const text = String(digits || '');
      if (!/^[0-9*#]+$/.test(text) || this.state !== 'answered') return false;
      if (!call || !call.ws || call.ws.readyState !== WebSocket.OPEN) return false;
      call.ws.send(JSON.stringify({ type: 'dtmf', digits: text }));
      this.sent = (this.sent + text).slice(-24);
      this.digits.textContent = 'Sent: ' + this.sent;
      for (const digit of text) this.flash(digit);
      return true;
    }

    flash(digit) {
      const key = this.keys[digit];
      if (!key) return;
      key.classList.add('cg-pressed');
      setTimeout(() => key.classList.remove('cg-pressed'), 150);
    }

    toggleMute() {
      this.setMuted(this.muteButton.getAttribute('aria-pressed') !== 'true');
    }

    setMuted(muted) {
      this.muteButton.setAttribute('aria-pressed', String(muted));
      const call = this.call;
      if (call && call.stream) call.stream.getAudioTracks().forEach((t) => { t.enabled = !muted; });
    }

    // ------------------------------------------------------------ HTTP

    url(path) {
      return new URL(path, this.settings.base).href;
    }

    async request(method, path, body) {
      let response;
      try {
        response = await fetch(this.url(path), {
          method,
          mode: 'cors',
          credentials: 'omit',
          headers: body ? { 'Content-Type': 'application/json' } : {},
          body: body ? JSON.stringify(body) : undefined,
        });
      } catch (_) {
        throw callError(await this.refusedThisSite() ? 'forbidden' : 'network');
      }
      if (response.ok) {
        try {
          return await response.json();
        } catch (_) {
          throw callError('server');
        }
      }
      throw httpError(response);
    }

    // A node refuses a site that is not among its widget's allowed origins
    // by leaving out the CORS headers, so the browser hides the answer and
    // the failure looks like a network error. If a no-cors request (whose
    // answer stays opaque) gets through, the node is reachable and it is
    // this site that was refused.
    async refusedThisSite() {
      try {
        await fetch(this.url('v1/widgets/' + this.widgetPath() + '/config'), {
          mode: 'no-cors', credentials: 'omit', cache: 'no-store',
        });
      } catch (_) {
        return false;
      }
      console.warn('callgate: the call service refused this site (' + window.location.origin +
        '); add it to the allowed origins of widget "' + this.settings.widget + '"');
      return true;
    }
  }

  function iceServers(config) {
    const servers = (config && Array.isArray(config.ice_servers)) ? config.ice_servers : [];
    return servers.map((s) => {
      const server = { urls: s.urls };
      if (s.username) server.username = s.username;
      if (s.credential) server.credential = s.credential;
      return server;
    });
  }

  function callError(reason, retryAfter) {
    const error = new Error('callgate: ' + reason);
    error.callgateReason = reason;
    if (retryAfter) error.retryAfter = retryAfter;
    return error;
  }

  function httpError(response) {
    switch (response.status) {
      case 400: return callError('bad_request');
      case 403: return callError('forbidden');
      case 404: return callError('not_found');
      case 429: {
        const seconds = parseInt(response.headers.get('Retry-After') || '', 10);
        return callError('rate_limited', seconds > 0 && seconds < 86400 ? seconds : null);
      }
      case 503: return callError('unavailable');
      default: return callError('server');
    }
  }

  boot();
})();
