/** The live day view (issue 13): planned vs started per area, late and missed highlighted, over SSE. */
export { dayRoutes, type DayRouteDeps } from './routes.js';
export { buildDayView, localDate, type DayView, type DayViewDeps } from './service.js';
