// The player: a file by its URL (MP4), or an HLS playlist through hls.js (vendored; loaded
// before the modules as window.Hls).
import { authHeaders } from './api.js';
import { h, view } from './dom.js';

export function playerSection() {
  const video = h('video', { id: 'player', controls: true, playsinline: true, preload: 'auto' });
  const title = h('p', { class: 'note', id: 'player-title' });
  const error = h('p', { class: 'error', id: 'player-error', role: 'alert' });
  const section = h('section', { id: 'player-section', hidden: true }, h('h2', {}, 'Player'), title, video, error);
  let hls = null;
  let current = null;

  const reset = () => {
    if (hls) hls.destroy();
    hls = null;
    video.removeAttribute('src');
    video.load();
    error.textContent = '';
  };
  const start = async (file, label) => {
    current = file;
    section.hidden = false;
    title.textContent = label + ': ' + file.obs_object;
    try {
      await video.play();
    } catch (_) {
      // Autoplay with sound may be refused; muted it is allowed.
      video.muted = true;
      await video.play().catch((err) => {
        error.textContent = 'cannot play: ' + err.message;
      });
    }
  };
  const player = {
    section,
    video,
    current: () => current,
    playFile(url, file) {
      reset();
      video.src = url;
      return start(file, 'File');
    },
    playHls(url, file) {
      reset();
      const Hls = window.Hls;
      if (!Hls || !Hls.isSupported()) {
        section.hidden = false;
        error.textContent = window.roomrecNoPlayer || 'this browser cannot play HLS';
        return Promise.resolve();
      }
      hls = new Hls({
        // No worker: the policy allows no blob: scripts.
        enableWorker: false,
        // The playlist is the API's (this origin, signed in); its segments are presigned
        // URLs of the bucket, which must get no credential of ours.
        xhrSetup(xhr, target) {
          if (new URL(target, location.href).origin === location.origin) {
            for (const [name, value] of Object.entries(authHeaders())) xhr.setRequestHeader(name, value);
          }
        },
      });
      hls.on(Hls.Events.ERROR, (_, data) => {
        if (data.fatal) error.textContent = 'HLS error: ' + data.details;
      });
      hls.loadSource(url);
      hls.attachMedia(video);
      return start(file, 'HLS');
    },
  };
  view.player = player;
  return player;
}
