// The end of an LTI Dynamic Registration: the LMS waits for this message to close the frame or
// window it showed the portal in (IMS LTI Dynamic Registration 1.0, "Registration completed").
(function () {
  "use strict";
  if (!document.querySelector("[data-lti-registration-done]")) {
    return;
  }
  var message = { subject: "org.imsglobal.lti.close" };
  var lms = window.opener || window.parent;
  if (lms && lms !== window) {
    lms.postMessage(message, "*");
  }
  // A window opened from the portal's page inside the LMS's frame: the LMS is that page's parent.
  if (window.opener && window.opener.parent && window.opener.parent !== window.opener) {
    window.opener.parent.postMessage(message, "*");
  }
})();
