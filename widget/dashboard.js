/*! callgate customer dashboard: numbers and their recording policy,
 * widgets (new ones, the sites each is allowed on, their embed snippet),
 * call records, recordings and the audit log, all through the node's admin
 * API. The API is the authority on every value: the page sends what was
 * typed (trimmed) and shows the API's own refusal.
 *
 * Plain ES2020, no build step, no dependencies. The page runs under a
 * strict Content-Security-Policy (scripts and styles from the node only),
 * so nothing here uses inline styles, eval or HTML strings: everything that
 * came from the API is put on the page as text (textContent), never parsed
 * as HTML.
 *
 * Sign-in: the pasted API key is posted once to POST /v1/session and
 * forgotten; the node answers with an HttpOnly session cookie (path /v1)
 * that every later request, the <audio> player and the download links send
 * by themselves. GET /v1/session tells whether a session exists and its
 * role; a `read` key sees everything with the change controls turned off.
 *
 * Test hooks (stable): table rows carry `data-id`, a widget's allowed
 * sites are `li[data-origin]` with a `.site` text; each section's
 * `.status` line shows the last result or the API's error text; the player
 * is `#player audio` with `data-recording` naming what it plays.
 */
(() => {
  'use strict';

  const POLICIES = [
    ['off', 'off'],
    ['opt_in', 'opt-in (visitor ticks)'],
    ['notice', 'notice (unless declined)'],
  ];
  const RETENTION_DAYS = [7, 30, 90, 365];
  const DEFAULT_PERIOD_DAYS = 7;
  const MAX_ROWS = 500;

  const $ = (selector, root) => (root || document).querySelector(selector);

  /** An element with attributes and children (strings become text). */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === false || value === null || value === undefined) continue;
      node.setAttribute(name, value === true ? '' : String(value));
    }
    for (const child of children) {
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function cell(...children) {
    return el('td', null, ...children);
  }

  function status(section, message, isError) {
    const line = $('#' + section + ' .status');
    line.textContent = message || '';
    line.classList.toggle('error', !!isError);
  }

  // ---------------------------------------------------------------- API

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  /** One admin API request; resolves to the JSON answer (null for 204)
   * or rejects with the API's own error text. */
  async function api(method, path, body) {
    const init = { method, credentials: 'same-origin', headers: { Accept: 'application/json' } };
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (_) {
      throw new ApiError(0, 'the node cannot be reached');
    }
    if (!response.ok) {
      let message = response.status + ' ' + response.statusText;
      try {
        const answer = await response.json();
        if (answer && typeof answer.error === 'string') message = answer.error;
      } catch (_) {
        // Not JSON: keep the status line.
      }
      if (response.status === 401 && path !== '/v1/session') {
        showSignIn('Your session has ended. Sign in again.');
      }
      throw new ApiError(response.status, message);
    }
    return response.status === 204 ? null : response.json();
  }

  function path(...parts) {
    return '/' + parts.map((p) => encodeURIComponent(p)).join('/');
  }

  /** A datetime-local value as RFC 3339 (UTC), or '' when empty. */
  function rfc3339(local) {
    if (!local) return '';
    const time = new Date(local);
    return Number.isNaN(time.getTime()) ? '' : time.toISOString();
  }

  /** `days` ago as a datetime-local value. */
  function localDaysAgo(days) {
    const time = new Date(Date.now() - days * 86400000);
    time.setSeconds(0, 0);
    return new Date(time.getTime() - time.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
  }

  function shownTime(text) {
    if (!text) return '';
    const time = new Date(text);
    return Number.isNaN(time.getTime()) ? text : time.toLocaleString();
  }

  function seconds(ms) {
    return (Math.round(ms / 100) / 10).toFixed(1) + ' s';
  }

  // ------------------------------------------------------------ session

  let session = null;

  function canChange() {
    return !!session && session.role === 'admin';
  }

  function showSignIn(message) {
    session = null;
    stopPlayer();
    for (const body of document.querySelectorAll('#app tbody')) body.replaceChildren();
    $('#app').hidden = true;
    $('#who').hidden = true;
    $('#sign-out').hidden = true;
    $('#sign-in').hidden = false;
    $('#sign-in-status').textContent = message || '';
    $('#key').focus();
  }

  async function showApp(who) {
    session = who;
    $('#sign-in').hidden = true;
    $('#sign-in-status').textContent = '';
    $('#who').textContent = 'Tenant ' + who.tenant_id + ', key ' + who.key_id + ' (' + who.role + ')';
    $('#who').hidden = false;
    $('#sign-out').hidden = false;
    $('#read-only').hidden = canChange();
    $('#privacy .erase').disabled = !canChange();
    $('#widget-new fieldset').disabled = !canChange();
    document.body.classList.toggle('read-only', !canChange());
    $('#app').hidden = false;
    await Promise.all([loadNumbers(), loadWidgets(), loadCdrs(), loadRecordings(), loadAudit()]);
  }

  async function signIn(event) {
    event.preventDefault();
    const input = $('#key');
    const key = input.value.trim();
    // The key is needed once; the session cookie stands for it from now on.
    input.value = '';
    const button = $('#sign-in-form button');
    button.disabled = true;
    $('#sign-in-status').textContent = '';
    try {
      await api('POST', '/v1/session', { key });
      await showApp(await api('GET', '/v1/session'));
    } catch (error) {
      $('#sign-in-status').textContent = 'Sign-in refused: ' + error.message;
    } finally {
      button.disabled = false;
    }
  }

  async function signOut() {
    try {
      await api('DELETE', '/v1/session');
    } finally {
      showSignIn('Signed out.');
    }
  }

  // ------------------------------------------------------------ numbers

  function choice(name, options, current, label) {
    const select = el('select', { name, 'aria-label': label, disabled: !canChange() });
    const values = options.map(([value]) => String(value));
    if (!values.includes(String(current))) options = options.concat([[current, String(current)]]);
    for (const [value, text] of options) {
      select.append(el('option', { value, selected: String(value) === String(current) }, text));
    }
    return select;
  }

  function numberRow(number) {
    const recording = choice('recording', POLICIES, number.recording, 'Recording for ' + number.id);
    const days = RETENTION_DAYS.map((d) => [d, d + ' days']);
    const retention = choice('retention_days', days, number.retention_days, 'Retention for ' + number.id);
    const save = el('button', { type: 'button', class: 'save', disabled: !canChange() }, 'Save');
    save.addEventListener('click', () => saveNumber(number.id, recording, retention, save));
    return el('tr', { 'data-id': number.id },
      cell(number.id), cell(number.e164), cell(number.trunk),
      cell(recording), cell(retention), cell(save));
  }

  async function loadNumbers() {
    try {
      const numbers = await api('GET', '/v1/numbers');
      $('#numbers tbody').replaceChildren(...numbers.map(numberRow));
      const filter = $('#cdr-filter select[name="number_id"]');
      const chosen = filter.value;
      filter.replaceChildren(el('option', { value: '' }, 'all numbers'),
        ...numbers.map((n) => el('option', { value: n.id, selected: n.id === chosen }, n.id)));
      showNumberChoices(numbers);
      status('numbers', numbers.length ? '' : 'No numbers yet.');
    } catch (error) {
      status('numbers', 'Could not load numbers: ' + error.message, true);
    }
  }

  async function saveNumber(id, recording, retention, button) {
    button.disabled = true;
    const change = { recording: recording.value, retention_days: Number(retention.value) };
    try {
      const saved = await api('PATCH', path('v1', 'numbers', id), change);
      status('numbers', 'Saved ' + saved.id + ': recording ' + saved.recording
        + ', recordings kept ' + saved.retention_days + ' days.');
      loadAudit();
    } catch (error) {
      status('numbers', 'Could not save ' + id + ': ' + error.message, true);
    } finally {
      button.disabled = !canChange();
    }
  }

  // ------------------------------------------------------------ widgets

  async function copy(text, what) {
    try {
      await navigator.clipboard.writeText(text);
      status('widgets', 'Copied the embed snippet of ' + what + '.');
    } catch (_) {
      status('widgets', 'Copying is blocked here: select the snippet and copy it by hand.', true);
    }
  }

  /** One allowed site with its Remove button. */
  function siteItem(widget, origin) {
    const remove = el('button', {
      type: 'button',
      class: 'remove-site',
      disabled: !canChange(),
      'aria-label': 'Remove ' + origin + ' from widget ' + widget.id,
    }, 'Remove');
    remove.addEventListener('click', () => removeSite(widget.id, origin, remove));
    return el('li', { 'data-origin': origin }, el('span', { class: 'site' }, origin), ' ', remove);
  }

  /** The allowed sites of a widget and the small form that adds one. */
  function sitesCell(widget) {
    const sites = widget.allowed_origins.map((origin) => siteItem(widget, origin));
    const list = el('ul', { class: 'sites' }, ...sites);
    const input = el('input', {
      name: 'origin',
      type: 'text',
      required: true,
      autocomplete: 'off',
      spellcheck: 'false',
      placeholder: 'https://shop.example.com',
      'aria-label': 'New site for widget ' + widget.id,
      'aria-describedby': 'sites-hint',
      disabled: !canChange(),
    });
    const add = el('button', { type: 'submit', disabled: !canChange() }, 'Add site');
    const form = el('form', { class: 'add-site' }, el('label', null, 'New site ', input), ' ', add);
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      addSite(widget.id, input, add);
    });
    return cell(list, form);
  }

  function widgetRow(widget) {
    const snippet = el('code', { class: 'embed' }, widget.embed);
    const button = el('button', { type: 'button', class: 'copy' }, 'Copy');
    button.addEventListener('click', () => copy(widget.embed, widget.id));
    return el('tr', { 'data-id': widget.id },
      cell(widget.id), cell(widget.number_id), sitesCell(widget),
      cell(snippet, ' ', button));
  }

  /** Puts `widget` (as the API answered) in its row; `focus` names the
   * control to give the keyboard back to, since the row is rebuilt. */
  function showWidget(widget, focus) {
    const row = widgetRow(widget);
    const old = $('#widgets tbody').querySelector('tr[data-id="' + CSS.escape(widget.id) + '"]');
    if (old) old.replaceWith(row);
    else $('#widgets tbody').append(row);
    if (focus) $(focus, row).focus();
  }

  async function loadWidgets() {
    try {
      const widgets = await api('GET', '/v1/widgets');
      $('#widgets tbody').replaceChildren(...widgets.map(widgetRow));
      status('widgets', widgets.length ? '' : 'No widgets yet.');
    } catch (error) {
      status('widgets', 'Could not load widgets: ' + error.message, true);
    }
  }

  /** Sends the widget's sites as `change` makes them from the node's
   * current list (not the page's, which another tab may have outdated);
   * the API checks every origin and answers with the widget as saved. */
  async function changeSites(id, change) {
    const current = await api('GET', path('v1', 'widgets', id));
    const origins = change(current.allowed_origins);
    if (!origins) return current;
    return api('PATCH', path('v1', 'widgets', id), { allowed_origins: origins });
  }

  async function addSite(id, input, button) {
    const origin = input.value.trim();
    if (!origin) return;
    button.disabled = true;
    input.removeAttribute('aria-invalid');
    let known = false;
    try {
      const saved = await changeSites(id, (origins) => {
        known = origins.includes(origin);
        return known ? null : origins.concat([origin]);
      });
      showWidget(saved, 'input[name="origin"]');
      status('widgets', (known ? origin + ' was already allowed on widget ' : 'Added ' + origin
        + ' to widget ') + id + '. Allowed sites: ' + saved.allowed_origins.join(', ') + '.');
      if (!known) loadAudit();
    } catch (error) {
      // The row is left as it was, the typed site kept to be corrected.
      input.setAttribute('aria-invalid', 'true');
      status('widgets', 'Could not add ' + origin + ' to widget ' + id + ': ' + error.message,
        true);
      input.focus();
    } finally {
      button.disabled = !canChange();
    }
  }

  async function removeSite(id, origin, button) {
    button.disabled = true;
    let known = true;
    try {
      const saved = await changeSites(id, (origins) => {
        known = origins.includes(origin);
        return known ? origins.filter((o) => o !== origin) : null;
      });
      showWidget(saved, 'input[name="origin"]');
      status('widgets', (known ? 'Removed ' + origin + ' from widget ' : origin
        + ' was no longer allowed on widget ') + id + '. Allowed sites: '
        + saved.allowed_origins.join(', ') + '.');
      if (known) loadAudit();
    } catch (error) {
      status('widgets', 'Could not remove ' + origin + ' from widget ' + id + ': '
        + error.message, true);
      button.disabled = !canChange();
    }
  }

  /** The new-widget form: its number choices follow the tenant's numbers. */
  function showNumberChoices(numbers) {
    const form = $('#widget-new');
    const select = form.elements.number_id;
    const chosen = select.value;
    select.replaceChildren(...numbers.map((n) => el('option',
      { value: n.id, selected: n.id === chosen }, n.id + ' (' + n.e164 + ')')));
    form.elements.create.disabled = !canChange() || numbers.length === 0;
  }

  async function createWidget(event) {
    event.preventDefault();
    const form = $('#widget-new');
    const id = form.elements.id.value.trim();
    const origin = form.elements.origin.value.trim();
    const widget = { id, number_id: form.elements.number_id.value, allowed_origins: [origin] };
    const button = form.elements.create;
    button.disabled = true;
    try {
      const created = await api('POST', '/v1/widgets', widget);
      showWidget(created);
      form.reset();
      status('widgets', 'Created widget ' + created.id + ' for number ' + created.number_id
        + ', allowed on ' + created.allowed_origins.join(', ')
        + '. Its embed snippet is in the table.');
      loadAudit();
    } catch (error) {
      status('widgets', 'Could not create widget ' + id + ': ' + error.message, true);
    } finally {
      button.disabled = !canChange() || form.elements.number_id.options.length === 0;
    }
  }

  // --------------------------------------------------------------- CDRs

  function cdrQuery() {
    const form = $('#cdr-filter');
    const query = new URLSearchParams();
    const from = rfc3339(form.elements.from.value);
    const to = rfc3339(form.elements.to.value);
    if (from) query.set('from', from);
    if (to) query.set('to', to);
    if (form.elements.number_id.value) query.set('number_id', form.elements.number_id.value);
    return query;
  }

  function cdrRow(cdr) {
    return el('tr', { 'data-id': cdr.call_id },
      cell(shownTime(cdr.created_at)), cell(cdr.number_id), cell(cdr.widget_id),
      cell(cdr.disposition + (cdr.sip_code ? ' (' + cdr.sip_code + ')' : '')),
      cell(seconds(cdr.duration_ms)), cell(cdr.ended_by), cell(cdr.recorded ? 'yes' : 'no'),
      cell(cdr.visitor_network || ''), cell(el('code', null, cdr.call_id)));
  }

  async function loadCdrs(event) {
    if (event) event.preventDefault();
    const query = cdrQuery();
    const csv = new URLSearchParams(query);
    csv.set('format', 'csv');
    $('#cdr-csv').href = '/v1/cdrs?' + csv.toString();
    try {
      const cdrs = await api('GET', '/v1/cdrs?' + query.toString());
      const newest = cdrs.slice(-MAX_ROWS).reverse();
      $('#cdrs tbody').replaceChildren(...newest.map(cdrRow));
      let line = cdrs.length + (cdrs.length === 1 ? ' call' : ' calls') + ' in this period.';
      if (cdrs.length > MAX_ROWS) line += ' The newest ' + MAX_ROWS + ' are shown; the CSV has them all.';
      status('cdrs', line);
    } catch (error) {
      status('cdrs', 'Could not load call records: ' + error.message, true);
    }
    await loadSummary(query);
  }

  // ------------------------------------------------------------ quality

  const LEG_NAMES = { browser: 'the visitor', trunk: 'the phone line' };

  function mos(value) {
    return value === null || value === undefined ? '' : value.toFixed(2);
  }

  function qualityRow(number) {
    return el('tr', { 'data-id': number.number_id },
      cell(number.number_id), cell(number.calls), cell(number.answered), cell(number.measured),
      ...number.bands.map((band) => el('td', { 'data-band': band.band }, band.calls)),
      cell(mos(number.average_mos)));
  }

  function worstRows(number) {
    return number.worst_calls.map((call) => el('tr', { 'data-id': call.call_id },
      cell(number.number_id), cell(shownTime(call.created_at)), cell(mos(call.mos)),
      cell(LEG_NAMES[call.leg] || call.leg), cell(el('code', null, call.call_id))));
  }

  function causeRow(cause) {
    return el('tr', null,
      cell(cause.disposition), cell(cause.sip_code === null ? '' : cause.sip_code),
      cell(cause.sip_reason || ''), cell(cause.q850_cause === null ? '' : cause.q850_cause),
      cell(cause.calls));
  }

  /** Quality per number, the worst calls and the causes of `query`'s period. */
  async function loadSummary(query) {
    try {
      const summary = await api('GET', '/v1/cdrs/summary?' + query.toString());
      $('#quality-numbers tbody').replaceChildren(...summary.numbers.map(qualityRow));
      const worst = summary.numbers.flatMap(worstRows)
        .sort((a, b) => Number(a.children[2].textContent) - Number(b.children[2].textContent));
      $('#worst-calls tbody').replaceChildren(...worst);
      $('#causes tbody').replaceChildren(...summary.causes.map(causeRow));
      status('quality', summary.truncated
        ? 'This period has too many calls to summarise: only the oldest 100,000 are counted.'
        : '');
    } catch (error) {
      status('quality', 'Could not load the quality summary: ' + error.message, true);
    }
  }

  // --------------------------------------------------------- recordings

  function stopPlayer() {
    const player = $('#player');
    const audio = $('audio', player);
    if (audio) {
      audio.pause();
      audio.remove();
    }
    player.hidden = true;
  }

  /** Streams the recording from the API (the cookie goes with it). */
  function play(recording) {
    stopPlayer();
    const player = $('#player');
    $('.player-title', player).textContent = 'Recording ' + recording.id + ' (call '
      + recording.call_id + '): left channel the visitor, right the callee.';
    const audio = el('audio', {
      controls: true,
      preload: 'auto',
      src: path('v1', 'recordings', recording.id, 'audio'),
      'data-recording': recording.id,
    });
    audio.addEventListener('error', () => {
      status('recordings', 'Could not play recording ' + recording.id + '.', true);
    });
    player.append(audio);
    player.hidden = false;
    audio.play().catch(() => {
      // Autoplay refused: the controls are there to press.
    });
    // Listening is audited: show it.
    audio.addEventListener('loadedmetadata', () => loadAudit(), { once: true });
  }

  async function deleteRecording(recording, button) {
    const question = 'Delete recording ' + recording.id + '? Its key is destroyed at once: '
      + 'nobody can listen to it again, from any copy.';
    if (!window.confirm(question)) return;
    button.disabled = true;
    try {
      await api('DELETE', path('v1', 'recordings', recording.id));
      const audio = $('#player audio');
      if (audio && audio.dataset.recording === recording.id) stopPlayer();
      await loadRecordings();
      status('recordings', 'Deleted recording ' + recording.id + '.');
      loadAudit();
    } catch (error) {
      status('recordings', 'Could not delete ' + recording.id + ': ' + error.message, true);
      button.disabled = !canChange();
    }
  }

  function recordingActions(recording) {
    if (recording.state !== 'stored') return cell('');
    const listen = el('button', { type: 'button', class: 'play' }, 'Play');
    listen.addEventListener('click', () => play(recording));
    const audioPath = path('v1', 'recordings', recording.id, 'audio');
    const download = el('a', { class: 'download', href: audioPath, download: recording.id + '.wav' },
      'Download');
    const remove = el('button', { type: 'button', class: 'delete', disabled: !canChange() }, 'Delete');
    remove.addEventListener('click', () => deleteRecording(recording, remove));
    return cell(listen, ' ', download, ' ', remove);
  }

  function recordingRow(recording) {
    let state = recording.state;
    if (state === 'stored' && !recording.complete) state += ' (incomplete)';
    return el('tr', { 'data-id': recording.id, 'data-state': recording.state },
      cell(shownTime(recording.created_at)), cell(el('code', null, recording.call_id)),
      cell(recording.number_id), cell(seconds(recording.duration_ms)), cell(state),
      cell(recording.deleted_at ? '' : shownTime(recording.expires_at)),
      recordingActions(recording));
  }

  async function loadRecordings() {
    try {
      const recordings = await api('GET', '/v1/recordings');
      const newest = recordings.slice().sort((a, b) => (a.created_at < b.created_at ? 1 : -1));
      $('#recordings tbody').replaceChildren(...newest.map(recordingRow));
      status('recordings', recordings.length ? '' : 'No recordings.');
    } catch (error) {
      status('recordings', 'Could not load recordings: ' + error.message, true);
    }
  }

  // ------------------------------------------------------------ privacy

  function privacyReference() {
    return $('#privacy-form').elements.reference.value.trim();
  }

  /** Downloads the call's archive through the session cookie. */
  async function exportCall(event) {
    event.preventDefault();
    const reference = privacyReference();
    if (!reference) return;
    const exportPath = path('v1', 'privacy', reference, 'export');
    try {
      const response = await fetch(exportPath, { credentials: 'same-origin' });
      if (!response.ok) {
        const answer = await response.json().catch(() => null);
        throw new ApiError(response.status, (answer && answer.error) || String(response.status));
      }
      const archive = await response.blob();
      const link = el('a', { href: URL.createObjectURL(archive), download: 'call-' + reference + '.tar' });
      link.click();
      setTimeout(() => URL.revokeObjectURL(link.href), 60000);
      status('privacy', 'Exported the call ' + reference + '.');
      loadAudit();
    } catch (error) {
      status('privacy', 'Could not export ' + reference + ': ' + error.message, true);
    }
  }

  async function eraseCall() {
    const reference = privacyReference();
    if (!reference) return;
    const question = 'Erase everything held about call ' + reference + '? Its recordings can '
      + 'never be heard again and only the billing fields of its record are kept.';
    if (!window.confirm(question)) return;
    try {
      const erased = await api('POST', path('v1', 'privacy', reference, 'erase'));
      status('privacy', 'Erased call ' + erased.call_id + ': ' + erased.recordings_erased
        + ' recording(s) destroyed, ' + erased.consent_receipts_deleted + ' consent receipt(s) deleted.');
      loadRecordings();
      loadAudit();
    } catch (error) {
      status('privacy', 'Could not erase ' + reference + ': ' + error.message, true);
    }
  }

  // -------------------------------------------------------------- audit

  function auditRow(event) {
    const mine = session && event.actor === 'key:' + session.key_id;
    return el('tr', { 'data-action': event.action, 'data-target': event.target_id },
      cell(shownTime(event.at)), cell(event.actor + (mine ? ' (this key)' : '')),
      cell(event.action), cell(event.target_kind), cell(event.target_id), cell(event.reason));
  }

  async function loadAudit(event) {
    if (event) event.preventDefault();
    const query = new URLSearchParams();
    const from = rfc3339($('#audit-filter').elements.from.value);
    if (from) query.set('from', from);
    try {
      const events = await api('GET', '/v1/audit?' + query.toString());
      $('#audit tbody').replaceChildren(...events.slice().reverse().map(auditRow));
      // The API answers oldest first, at most 1000 events.
      const cut = events.length >= 1000 ? ' Only the first 1000 are shown: pick a later date.' : '';
      status('audit', events.length + (events.length === 1 ? ' event' : ' events')
        + ', newest first.' + cut);
    } catch (error) {
      status('audit', 'Could not load the audit log: ' + error.message, true);
    }
  }

  // -------------------------------------------------------------- start

  async function start() {
    $('#sign-in-form').addEventListener('submit', signIn);
    $('#sign-out').addEventListener('click', signOut);
    $('#cdr-filter').addEventListener('submit', loadCdrs);
    $('#audit-filter').addEventListener('submit', loadAudit);
    $('#recordings .refresh').addEventListener('click', loadRecordings);
    $('#privacy-form').addEventListener('submit', exportCall);
    $('#privacy .erase').addEventListener('click', eraseCall);
    $('#widget-new').addEventListener('submit', createWidget);
    $('#cdr-filter').elements.from.value = localDaysAgo(DEFAULT_PERIOD_DAYS);
    $('#audit-filter').elements.from.value = localDaysAgo(DEFAULT_PERIOD_DAYS);
    try {
      await showApp(await api('GET', '/v1/session'));
    } catch (error) {
      showSignIn(error.status === 401 ? '' : 'The node cannot be reached: ' + error.message);
    }
  }

  start();
})();
